//! Command batching: launchers record dispatches into a `Recorder`, and one `submit` sends them
//! all in a single command buffer. Nothing blocks on the GPU until a caller reads a result back.
//!
//! Consecutive dispatches share one compute pass; wgpu orders them by their buffer usage, so a
//! kernel that reads another's output sees it complete.

use bytemuck::Pod;
use wgpu::util::DeviceExt;

use crate::gpu::context::GpuContext;

pub struct Recorder<'c> {
    pub ctx: &'c GpuContext,
    encoder: wgpu::CommandEncoder,
    pass: Option<wgpu::ComputePass<'static>>,
    /// Timestamp query set whose slots 0 and 1 bracket the first compute pass.
    timestamps: Option<wgpu::QuerySet>,
    dispatches: usize,
}

impl<'c> Recorder<'c> {
    pub fn new(ctx: &'c GpuContext) -> Self {
        let encoder = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("hebb batch"),
            });
        Self {
            ctx,
            encoder,
            pass: None,
            timestamps: None,
            dispatches: 0,
        }
    }

    /// Brackets the first compute pass of this recorder with timestamps in `set` slots 0 and 1.
    /// Needs TIMESTAMP_QUERY; the pass must be the first thing recorded.
    pub fn with_timestamps(mut self, set: wgpu::QuerySet) -> Self {
        self.timestamps = Some(set);
        self
    }

    /// A small uniform buffer holding `params` for one launch.
    pub fn uniform<T: Pod>(&self, params: &T) -> wgpu::Buffer {
        self.ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("params"),
                contents: bytemuck::bytes_of(params),
                usage: wgpu::BufferUsages::UNIFORM,
            })
    }

    /// Records one dispatch of `pipeline` with `bind_group` as group 0.
    pub fn dispatch(
        &mut self,
        pipeline: &wgpu::ComputePipeline,
        bind_group: &wgpu::BindGroup,
        groups: [u32; 3],
    ) {
        let pass = self.pass.get_or_insert_with(|| {
            let timestamp_writes =
                self.timestamps
                    .as_ref()
                    .map(|set| wgpu::ComputePassTimestampWrites {
                        query_set: set,
                        beginning_of_pass_write_index: Some(0),
                        end_of_pass_write_index: Some(1),
                    });
            let pass = self
                .encoder
                .begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("hebb kernels"),
                    timestamp_writes,
                });
            pass.forget_lifetime()
        });
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, bind_group, &[]);
        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        self.dispatches += 1;
    }

    /// The encoder, for copies and clears between dispatches (closes the open compute pass).
    pub fn encoder(&mut self) -> &mut wgpu::CommandEncoder {
        self.pass = None;
        self.timestamps = None;
        &mut self.encoder
    }

    pub fn dispatch_count(&self) -> usize {
        self.dispatches
    }

    /// Ends recording and submits everything as one command buffer. Does not wait.
    pub fn submit(mut self) -> wgpu::SubmissionIndex {
        self.pass = None;
        self.ctx.queue.submit([self.encoder.finish()])
    }

    /// Ends recording and returns the command buffer, for callers that append to it.
    pub fn finish(mut self) -> wgpu::CommandBuffer {
        self.pass = None;
        self.encoder.finish()
    }
}

/// Splits `groups` workgroups over a 2-D grid whose x dimension stays within the adapter's
/// per-dimension limit. Kernels recover the linear index as `wg.y * num_workgroups.x + wg.x`.
pub fn grid_1d(ctx: &GpuContext, groups: u32) -> [u32; 3] {
    let max = ctx.limits.max_compute_workgroups_per_dimension.max(1);
    if groups <= max {
        [groups.max(1), 1, 1]
    } else {
        [max, groups.div_ceil(max), 1]
    }
}
