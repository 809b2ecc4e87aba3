//! GPU timing: timestamp queries around a compute pass where the adapter supports them,
//! otherwise wall-clock time around a fenced submission. Each measurement says which was used.

use std::time::Instant;

use crate::error::{HebbError, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::recorder::Recorder;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TimerKind {
    /// Device timestamps written at the start and end of the compute pass.
    Timestamp,
    /// Host wall-clock from submit to the fence signalling completion.
    Wall,
}

impl TimerKind {
    pub fn name(self) -> &'static str {
        match self {
            TimerKind::Timestamp => "timestamp",
            TimerKind::Wall => "wall",
        }
    }
}

pub struct GpuTimer {
    pub kind: TimerKind,
    queries: Option<(wgpu::QuerySet, wgpu::Buffer, wgpu::Buffer)>,
}

impl GpuTimer {
    /// Uses timestamps when the device has TIMESTAMP_QUERY, unless `force_wall`.
    pub fn new(ctx: &GpuContext, force_wall: bool) -> Self {
        if force_wall || !ctx.has(wgpu::Features::TIMESTAMP_QUERY) {
            return Self {
                kind: TimerKind::Wall,
                queries: None,
            };
        }
        let set = ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("timer"),
            ty: wgpu::QueryType::Timestamp,
            count: 2,
        });
        let resolve = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timer resolve"),
            size: 16,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let readback = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timer readback"),
            size: 16,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Self {
            kind: TimerKind::Timestamp,
            queries: Some((set, resolve, readback)),
        }
    }

    /// Runs `record` (which records only dispatches) in one compute pass, waits for it, and
    /// returns the seconds the GPU spent on it.
    pub fn time<'c>(
        &self,
        ctx: &'c GpuContext,
        record: impl FnOnce(&mut Recorder<'c>) -> Result<()>,
    ) -> Result<f64> {
        let Some((set, resolve, readback)) = &self.queries else {
            let mut rec = Recorder::new(ctx);
            record(&mut rec)?;
            let start = Instant::now();
            rec.submit();
            ctx.wait()?;
            return Ok(start.elapsed().as_secs_f64());
        };
        let mut rec = Recorder::new(ctx).with_timestamps(set.clone());
        record(&mut rec)?;
        let ticks = read_timestamps_into(ctx, rec.finish_encoder(), set, resolve, readback, 2)?;
        let period_ns = ctx.queue.get_timestamp_period() as f64;
        Ok(ticks[1].wrapping_sub(ticks[0]) as f64 * period_ns * 1e-9)
    }
}

/// Resolves timestamps `0..count` of `set` at the end of `encoder`'s work, submits it, waits
/// and returns the raw ticks (multiply by the queue's timestamp period for nanoseconds).
pub fn read_timestamps(
    ctx: &GpuContext,
    encoder: wgpu::CommandEncoder,
    set: &wgpu::QuerySet,
    count: u32,
) -> Result<Vec<u64>> {
    let bytes = 8 * count as u64;
    let buffer = |label, usage| {
        ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes,
            usage,
            mapped_at_creation: false,
        })
    };
    let resolve = buffer(
        "timestamp resolve",
        wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
    );
    let readback = buffer(
        "timestamp readback",
        wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
    );
    read_timestamps_into(ctx, encoder, set, &resolve, &readback, count)
}

fn read_timestamps_into(
    ctx: &GpuContext,
    mut encoder: wgpu::CommandEncoder,
    set: &wgpu::QuerySet,
    resolve: &wgpu::Buffer,
    readback: &wgpu::Buffer,
    count: u32,
) -> Result<Vec<u64>> {
    let bytes = 8 * count as u64;
    encoder.resolve_query_set(set, 0..count, resolve, 0);
    encoder.copy_buffer_to_buffer(resolve, 0, readback, 0, bytes);
    ctx.queue.submit([encoder.finish()]);
    let (tx, rx) = std::sync::mpsc::channel();
    readback.map_async(wgpu::MapMode::Read, .., move |r| {
        let _ = tx.send(r);
    });
    ctx.wait()?;
    let gpu_err = |message: String| HebbError::Gpu {
        during: "reading timestamps".into(),
        message,
    };
    rx.recv()
        .map_err(|e| gpu_err(e.to_string()))?
        .map_err(|e| gpu_err(e.to_string()))?;
    let ticks: Vec<u64> = {
        let view = readback
            .get_mapped_range(..)
            .map_err(|e| gpu_err(e.to_string()))?;
        bytemuck::pod_collect_to_vec(&view[..bytes as usize])
    };
    readback.unmap();
    Ok(ticks)
}
