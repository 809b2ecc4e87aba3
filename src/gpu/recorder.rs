//! Command batching: launchers record dispatches into a `Recorder`, and one `submit` sends them
//! all in a single command buffer. Nothing blocks on the GPU until a caller reads a result back.
//!
//! Consecutive dispatches share one compute pass; wgpu orders them by their buffer usage, so a
//! kernel that reads another's output sees it complete.

use std::time::Instant;

use bytemuck::Pod;

use crate::dist::Collective;
use crate::error::{HebbError, Result};
use crate::gpu::bindings::{UniformArena, UniformSlot};
use crate::gpu::context::GpuContext;
use crate::gpu::tensor::Tensor;
use crate::gpu::timing::{TimerKind, read_timestamps};

/// Timestamp slots of a profiling recorder: two per dispatch (wgpu's largest query set).
const PROFILE_QUERIES: u32 = 4096;

/// One profiled dispatch: the kernel, the device time it took, and the host time spent
/// recording it (from the end of the previous dispatch's recording: bind groups, parameter
/// buffers, shape checks and any host work of the launcher).
#[derive(Clone, Debug, serde::Serialize)]
pub struct DispatchTime {
    pub kernel: String,
    /// Workgroups dispatched (x, y, z).
    pub groups: [u32; 3],
    pub device_seconds: f64,
    pub host_seconds: f64,
}

/// How a profiling recorder times each dispatch.
enum Profile {
    /// Each dispatch in its own compute pass, bracketed by timestamps `2i`, `2i + 1`.
    Timestamps {
        set: wgpu::QuerySet,
        kernels: Vec<(String, [u32; 3])>,
        host: Vec<f64>,
        last: Instant,
    },
    /// No timestamps: each dispatch is submitted alone and timed from submit to fence.
    Wall {
        times: Vec<DispatchTime>,
        error: Option<HebbError>,
        last: Instant,
    },
}

pub struct Recorder<'c> {
    pub ctx: &'c GpuContext,
    encoder: wgpu::CommandEncoder,
    pass: Option<wgpu::ComputePass<'static>>,
    /// Timestamp query set whose slots 0 and 1 bracket the first compute pass.
    timestamps: Option<wgpu::QuerySet>,
    dispatches: usize,
    profile: Option<Profile>,
    /// This recorder's kernel parameters, uploaded before each submission.
    uniforms: UniformArena,
    /// The process group of a data-parallel step and this rank's share of its global batch.
    group: Option<GroupStep<'c>>,
}

/// A step recorded by one rank of a process group: the group, and the images of the global
/// batch this rank holds and all ranks hold (the rules scale their sums by 1/global).
#[derive(Clone, Copy)]
struct GroupStep<'c> {
    group: &'c dyn Collective,
    local_images: usize,
    global_images: usize,
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
            profile: None,
            uniforms: UniformArena::new(
                ctx.uniform_chunks.clone(),
                ctx.limits.min_uniform_buffer_offset_alignment,
            ),
            group: None,
        }
    }

    /// A recorder for one rank's part of a data-parallel step: this rank holds `local_images`
    /// of the `global_images` the group's step learns from. With a group of one process it
    /// records as `new` does.
    pub fn in_group(
        ctx: &'c GpuContext,
        group: &'c dyn Collective,
        local_images: usize,
        global_images: usize,
    ) -> Self {
        let mut rec = Self::new(ctx);
        if group.size() > 1 {
            rec.group = Some(GroupStep {
                group,
                local_images: local_images.max(1),
                global_images,
            });
        }
        rec
    }

    /// The process group this step is recorded for, where it has more than one process.
    pub fn group(&self) -> Option<&'c dyn Collective> {
        self.group.map(|g| g.group)
    }

    /// The rows of the whole group's step for `rows` rows here (rows per image are the same
    /// on every rank): what a sum over the global batch is divided by. `rows` alone.
    pub fn global_rows(&self, rows: usize) -> usize {
        match self.group {
            Some(g) => rows / g.local_images * g.global_images,
            None => rows,
        }
    }

    /// Sums `tensors` (f32) over the process group, in place, before anything recorded later
    /// runs: the work recorded so far is submitted, the tensors are read back, summed in one
    /// collective and written back. Does nothing outside a group.
    pub fn all_reduce(&mut self, tensors: &[&Tensor]) -> Result<()> {
        if self.group.is_none() {
            return Ok(());
        }
        self.host_sync(tensors, |values, group| {
            let mut flat: Vec<f32> = values.concat();
            group.all_reduce_sum_f32(&mut flat);
            let mut at = 0;
            for v in values.iter_mut() {
                let len = v.len();
                v.copy_from_slice(&flat[at..at + len]);
                at += len;
            }
            Ok(())
        })
    }

    /// Submits the work recorded so far, reads `tensors` (f32) back, lets `combine` change
    /// their values with the group's collectives, and writes them back before anything
    /// recorded later runs. Does nothing outside a group.
    pub fn host_sync(
        &mut self,
        tensors: &[&Tensor],
        combine: impl FnOnce(&mut [Vec<f32>], &dyn Collective) -> Result<()>,
    ) -> Result<()> {
        let Some(g) = self.group else {
            return Ok(());
        };
        self.pass = None;
        self.timestamps = None;
        self.uniforms.flush(&self.ctx.queue);
        let fresh = self
            .ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("hebb batch (after a group sync)"),
            });
        let before = std::mem::replace(&mut self.encoder, fresh);
        self.ctx.queue.submit([before.finish()]);
        let mut values = tensors
            .iter()
            .map(|t| t.to_f32_vec(self.ctx))
            .collect::<Result<Vec<_>>>()?;
        combine(&mut values, g.group)?;
        for (t, v) in tensors.iter().zip(&values) {
            t.write_f32(self.ctx, v)?;
        }
        Ok(())
    }

    /// A recorder that times every dispatch on its own (`finish_profile` returns the times):
    /// with timestamps around one compute pass per dispatch where the device has
    /// TIMESTAMP_QUERY, otherwise by submitting and waiting for each dispatch alone, which
    /// adds the submission overhead to every kernel (also with `force_wall`). Either way the
    /// dispatches no longer share passes, so the profile's total exceeds an unprofiled step's
    /// time.
    pub fn profiling(ctx: &'c GpuContext, force_wall: bool) -> Self {
        let mut rec = Self::new(ctx);
        rec.profile = Some(if !force_wall && ctx.has(wgpu::Features::TIMESTAMP_QUERY) {
            Profile::Timestamps {
                set: ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("dispatch profile"),
                    ty: wgpu::QueryType::Timestamp,
                    count: PROFILE_QUERIES,
                }),
                kernels: Vec::new(),
                host: Vec::new(),
                last: Instant::now(),
            }
        } else {
            Profile::Wall {
                times: Vec::new(),
                error: None,
                last: Instant::now(),
            }
        });
        rec
    }

    /// How this recorder's profile is timed, if it profiles.
    pub fn profile_timer(&self) -> Option<TimerKind> {
        self.profile.as_ref().map(|p| match p {
            Profile::Timestamps { .. } => TimerKind::Timestamp,
            Profile::Wall { .. } => TimerKind::Wall,
        })
    }

    /// Brackets the first compute pass of this recorder with timestamps in `set` slots 0 and 1.
    /// Needs TIMESTAMP_QUERY; the pass must be the first thing recorded.
    pub fn with_timestamps(mut self, set: wgpu::QuerySet) -> Self {
        self.timestamps = Some(set);
        self
    }

    /// A uniform slot holding `params` for one launch (in this recorder's arena, uploaded when
    /// it submits).
    pub fn uniform<T: Pod>(&mut self, params: &T) -> UniformSlot {
        self.uniforms
            .push(&self.ctx.device, bytemuck::bytes_of(params))
    }

    /// Records one dispatch of `pipeline` with `bind_group` as group 0.
    pub fn dispatch(
        &mut self,
        pipeline: &wgpu::ComputePipeline,
        bind_group: &wgpu::BindGroup,
        groups: [u32; 3],
    ) {
        if self.profile.is_some() {
            self.profiled_dispatch(pipeline, bind_group, groups);
            return;
        }
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

    fn profiled_dispatch(
        &mut self,
        pipeline: &wgpu::ComputePipeline,
        bind_group: &wgpu::BindGroup,
        groups: [u32; 3],
    ) {
        let kernel = self.ctx.kernels.name_of(pipeline);
        self.pass = None;
        let record =
            |encoder: &mut wgpu::CommandEncoder,
             timestamp_writes: Option<wgpu::ComputePassTimestampWrites<'_>>| {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("hebb profiled kernel"),
                    timestamp_writes,
                });
                pass.set_pipeline(pipeline);
                pass.set_bind_group(0, bind_group, &[]);
                pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
            };
        self.dispatches += 1;
        match self.profile.as_mut() {
            Some(Profile::Timestamps {
                set,
                kernels,
                host,
                last,
            }) => {
                let slot = 2 * kernels.len() as u32;
                // Past the query set's capacity the dispatch still runs, untimed;
                // `finish_profile` reports the overflow.
                let writes =
                    (slot + 1 < PROFILE_QUERIES).then_some(wgpu::ComputePassTimestampWrites {
                        query_set: set,
                        beginning_of_pass_write_index: Some(slot),
                        end_of_pass_write_index: Some(slot + 1),
                    });
                host.push(last.elapsed().as_secs_f64());
                kernels.push((kernel, groups));
                record(&mut self.encoder, writes);
                *last = Instant::now();
            }
            Some(Profile::Wall { times, error, last }) => {
                let host_seconds = last.elapsed().as_secs_f64();
                // Whatever was recorded before this dispatch runs first, untimed.
                let device = &self.ctx.device;
                let fresh = || {
                    device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                        label: Some("hebb profiled batch"),
                    })
                };
                let before = std::mem::replace(&mut self.encoder, fresh());
                self.uniforms.flush(&self.ctx.queue);
                self.ctx.queue.submit([before.finish()]);
                let waited = self.ctx.wait();
                record(&mut self.encoder, None);
                let alone = std::mem::replace(&mut self.encoder, fresh());
                let started = Instant::now();
                self.ctx.queue.submit([alone.finish()]);
                let waited = waited.and_then(|()| self.ctx.wait());
                if let (Err(e), None) = (waited, &error) {
                    *error = Some(e);
                }
                times.push(DispatchTime {
                    kernel,
                    groups,
                    device_seconds: started.elapsed().as_secs_f64(),
                    host_seconds,
                });
                *last = Instant::now();
            }
            None => unreachable!("profiled_dispatch runs only on profiling recorders"),
        }
    }

    /// Submits a profiling recorder's work, waits for it and returns each dispatch's times in
    /// recording order.
    pub fn finish_profile(mut self) -> Result<Vec<DispatchTime>> {
        self.pass = None;
        let ctx = self.ctx;
        match self.profile.take() {
            None => Err(HebbError::Gpu {
                during: "reading a dispatch profile".into(),
                message: "this recorder was not created with Recorder::profiling".into(),
            }),
            Some(Profile::Wall { times, error, .. }) => {
                self.uniforms.flush(&ctx.queue);
                ctx.queue.submit([self.encoder.finish()]);
                ctx.wait()?;
                match error {
                    Some(e) => Err(e),
                    None => Ok(times),
                }
            }
            Some(Profile::Timestamps {
                set, kernels, host, ..
            }) => {
                let timed = kernels.len().min(PROFILE_QUERIES as usize / 2);
                if timed < kernels.len() {
                    return Err(HebbError::Gpu {
                        during: "reading a dispatch profile".into(),
                        message: format!(
                            "{} dispatches recorded; a profile times at most {timed}",
                            kernels.len()
                        ),
                    });
                }
                self.uniforms.flush(&ctx.queue);
                let ticks = read_timestamps(ctx, self.encoder, &set, 2 * timed as u32)?;
                let period = ctx.queue.get_timestamp_period() as f64 * 1e-9;
                Ok(kernels
                    .into_iter()
                    .zip(host)
                    .zip(ticks.chunks_exact(2))
                    .map(|(((kernel, groups), host_seconds), t)| DispatchTime {
                        kernel,
                        groups,
                        device_seconds: t[1].wrapping_sub(t[0]) as f64 * period,
                        host_seconds,
                    })
                    .collect())
            }
        }
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
        self.uniforms.flush(&self.ctx.queue);
        self.ctx.queue.submit([self.encoder.finish()])
    }

    /// Ends recording and returns the open encoder, for callers that append commands to it.
    /// The parameters are uploaded now, ahead of the caller's submission; their arena chunks
    /// leave the pool with this recorder (another recorder must not overwrite them first).
    pub fn finish_encoder(mut self) -> wgpu::CommandEncoder {
        self.pass = None;
        self.uniforms.flush(&self.ctx.queue);
        self.uniforms.detach();
        self.encoder
    }

    /// Ends recording and returns the command buffer, for callers that append to it.
    /// As `finish_encoder`, the parameters are uploaded now and their chunks leave the pool.
    pub fn finish(mut self) -> wgpu::CommandBuffer {
        self.pass = None;
        self.uniforms.flush(&self.ctx.queue);
        self.uniforms.detach();
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
