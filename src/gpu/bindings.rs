//! What a launch binds, without allocating in the steady state: kernel parameters go into a
//! uniform arena (slots of a few pooled 64 KiB buffers, uploaded once per submission), and bind
//! groups are cached by pipeline and bound buffer ranges.
//!
//! A training loop records the same launches every step, and each recorder takes the most
//! recently returned arena chunk, so the k-th launch of a step gets the same chunk and offset
//! as the step before it, and its bind group is found in the cache. Reusing a chunk as soon as
//! its recorder was submitted is safe because `Queue::write_buffer` is ordered with `submit`:
//! the new parameters land before the next submission, after the previous ones.

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Bytes of one arena chunk (WebGPU guarantees 64 KiB uniform bindings; each launch binds only
/// its own slot).
pub const UNIFORM_CHUNK_BYTES: u64 = 64 << 10;

/// Bind groups kept at most. Each holds its buffers alive, so the cache is bounded; it is
/// cleared when full (a training step binds a few dozen).
pub const BIND_GROUP_CACHE_ENTRIES: usize = 512;

/// Arena chunks returned by finished recorders, for the next one.
#[derive(Default)]
pub struct ChunkPool {
    free: Mutex<Vec<wgpu::Buffer>>,
    created: AtomicUsize,
}

impl ChunkPool {
    /// Chunks allocated so far (a steady-state loop allocates none).
    pub fn created(&self) -> usize {
        self.created.load(Ordering::Relaxed)
    }
}

/// One launch's parameters: a range of an arena chunk.
#[derive(Clone, Debug)]
pub struct UniformSlot {
    pub buffer: wgpu::Buffer,
    pub offset: u64,
    pub size: NonZeroU64,
}

impl UniformSlot {
    /// The slot as a uniform binding.
    pub fn as_entire_binding(&self) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &self.buffer,
            offset: self.offset,
            size: Some(self.size),
        })
    }
}

/// A recorder's parameter slots: chunks taken from the pool, the bytes staged for each, and how
/// many of them were already uploaded. Dropping it returns the chunks.
pub struct UniformArena {
    pool: Arc<ChunkPool>,
    alignment: u64,
    chunks: Vec<(wgpu::Buffer, Vec<u8>, usize)>,
}

impl UniformArena {
    pub fn new(pool: Arc<ChunkPool>, alignment: u32) -> Self {
        Self {
            pool,
            alignment: u64::from(alignment.max(wgpu::COPY_BUFFER_ALIGNMENT as u32)),
            chunks: Vec::new(),
        }
    }

    /// Stages `bytes` (a multiple of 4 bytes) in the next aligned slot.
    pub fn push(&mut self, device: &wgpu::Device, bytes: &[u8]) -> UniformSlot {
        let size = (bytes.len() as u64).max(wgpu::COPY_BUFFER_ALIGNMENT);
        let fits = |staged: &Vec<u8>| {
            (staged.len() as u64).next_multiple_of(self.alignment) + size <= UNIFORM_CHUNK_BYTES
        };
        if !self
            .chunks
            .last()
            .is_some_and(|(_, staged, _)| fits(staged))
        {
            let reused = self.pool.free.lock().ok().and_then(|mut free| free.pop());
            let buffer = reused.unwrap_or_else(|| {
                self.pool.created.fetch_add(1, Ordering::Relaxed);
                device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("params arena"),
                    size: UNIFORM_CHUNK_BYTES,
                    usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            });
            self.chunks.push((buffer, Vec::new(), 0));
        }
        let (buffer, staged, _) = self.chunks.last_mut().expect("a chunk was just ensured");
        let offset = (staged.len() as u64).next_multiple_of(self.alignment);
        staged.resize(offset as usize, 0);
        staged.extend_from_slice(bytes);
        staged.resize((offset + size) as usize, 0);
        UniformSlot {
            buffer: buffer.clone(),
            offset,
            size: NonZeroU64::new(size).expect("at least 4 bytes"),
        }
    }

    /// Uploads what was staged since the last upload; call before every submission of the
    /// recorder's commands.
    pub fn flush(&mut self, queue: &wgpu::Queue) {
        for (buffer, staged, uploaded) in &mut self.chunks {
            if staged.len() > *uploaded {
                queue.write_buffer(buffer, *uploaded as u64, &staged[*uploaded..]);
                *uploaded = staged.len();
            }
        }
    }

    /// Keeps the chunks out of the pool (dropped once the GPU is done with them): for commands
    /// submitted by the caller after the recorder is gone.
    pub fn detach(&mut self) {
        self.chunks.clear();
    }
}

impl Drop for UniformArena {
    fn drop(&mut self) {
        if let Ok(mut free) = self.pool.free.lock() {
            // Returned in reverse, so the next recorder takes them in the same order.
            free.extend(self.chunks.drain(..).rev().map(|(buffer, _, _)| buffer));
        }
    }
}

/// A bind group's identity: the pipeline and, per binding, the buffer range bound.
#[derive(Clone, PartialEq, Eq, Hash)]
struct BindKey {
    pipeline: wgpu::ComputePipeline,
    entries: Vec<(u32, wgpu::Buffer, u64, Option<NonZeroU64>)>,
}

/// Bind groups of group 0 by pipeline and bound buffer ranges.
#[derive(Default)]
pub struct BindGroupCache {
    groups: Mutex<HashMap<BindKey, wgpu::BindGroup>>,
    created: AtomicUsize,
}

impl BindGroupCache {
    /// The bind group of `entries` for `pipeline`, created on first use.
    pub fn get(
        &self,
        device: &wgpu::Device,
        pipeline: &wgpu::ComputePipeline,
        entries: &[(u32, wgpu::BindingResource<'_>)],
    ) -> wgpu::BindGroup {
        let create = || {
            self.created.fetch_add(1, Ordering::Relaxed);
            let entries: Vec<wgpu::BindGroupEntry<'_>> = entries
                .iter()
                .map(|(binding, resource)| wgpu::BindGroupEntry {
                    binding: *binding,
                    resource: resource.clone(),
                })
                .collect();
            device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &pipeline.get_bind_group_layout(0),
                entries: &entries,
            })
        };
        let mut key = BindKey {
            pipeline: pipeline.clone(),
            entries: Vec::with_capacity(entries.len()),
        };
        for (binding, resource) in entries {
            match resource {
                wgpu::BindingResource::Buffer(b) => {
                    key.entries
                        .push((*binding, b.buffer.clone(), b.offset, b.size));
                }
                // Not a buffer range: not cached.
                _ => return create(),
            }
        }
        let Ok(mut groups) = self.groups.lock() else {
            return create();
        };
        if let Some(group) = groups.get(&key) {
            return group.clone();
        }
        if groups.len() >= BIND_GROUP_CACHE_ENTRIES {
            groups.clear();
        }
        let group = create();
        groups.insert(key, group.clone());
        group
    }

    /// Bind groups created so far, cached or not (a steady-state loop creates none).
    pub fn created(&self) -> usize {
        self.created.load(Ordering::Relaxed)
    }

    /// Bind groups held now.
    pub fn len(&self) -> usize {
        self.groups.lock().map_or(0, |g| g.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
