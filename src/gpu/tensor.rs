//! Typed device tensors: a storage buffer with a shape and a dtype.
//!
//! Layout is row-major. f16 tensors are stored as little-endian IEEE halves, two per 32-bit
//! word; the kernels read them natively (`array<f16>`, SHADER_F16) or unpack them
//! (`unpack2x16float`, core WGSL), so the bytes are the same either way. Buffers are padded to
//! 16 bytes so any tensor can also be bound as `array<vec4<f32>>`.

use half::f16;

use crate::error::{HebbError, Result};
use crate::gpu::context::GpuContext;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F16,
}

impl DType {
    pub fn size(self) -> u64 {
        match self {
            DType::F32 => 4,
            DType::F16 => 2,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
        }
    }
}

pub struct Tensor {
    pub label: String,
    pub shape: Vec<usize>,
    pub dtype: DType,
    pub buffer: wgpu::Buffer,
}

fn padded_bytes(len: usize, dtype: DType) -> u64 {
    (len as u64 * dtype.size()).div_ceil(16).max(1) * 16
}

impl Tensor {
    /// Another handle to the same buffer (no copy): for holding a tensor that a `&mut`
    /// borrow of its owner would otherwise lock.
    pub fn share(&self) -> Tensor {
        Tensor {
            label: self.label.clone(),
            shape: self.shape.clone(),
            dtype: self.dtype,
            buffer: self.buffer.clone(),
        }
    }

    /// An uninitialised (zero-filled by wgpu) tensor.
    pub fn empty(ctx: &GpuContext, label: &str, shape: &[usize], dtype: DType) -> Result<Self> {
        let len: usize = shape.iter().product();
        let bytes = padded_bytes(len, dtype);
        if bytes > ctx.limits.max_buffer_size {
            return Err(HebbError::TooLargeForBuffer {
                tensor: format!("{label} {shape:?} {}", dtype.name()),
                bytes,
                limit: ctx.limits.max_buffer_size,
            });
        }
        let buffer = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Ok(Self {
            label: label.to_string(),
            shape: shape.to_vec(),
            dtype,
            buffer,
        })
    }

    pub fn from_f32(ctx: &GpuContext, label: &str, shape: &[usize], data: &[f32]) -> Result<Self> {
        let t = Self::empty(ctx, label, shape, DType::F32)?;
        t.check_len(data.len())?;
        t.write_bytes(ctx, bytemuck::cast_slice(data));
        Ok(t)
    }

    pub fn from_f16(ctx: &GpuContext, label: &str, shape: &[usize], data: &[f16]) -> Result<Self> {
        let t = Self::empty(ctx, label, shape, DType::F16)?;
        t.check_len(data.len())?;
        t.write_bytes(ctx, bytemuck::cast_slice(data));
        Ok(t)
    }

    fn check_len(&self, got: usize) -> Result<()> {
        if got != self.len() {
            return Err(HebbError::Shape {
                tensor: self.label.clone(),
                message: format!(
                    "shape {:?} holds {} elements, but {got} were given",
                    self.shape,
                    self.len()
                ),
            });
        }
        Ok(())
    }

    fn write_bytes(&self, ctx: &GpuContext, bytes: &[u8]) {
        // write_buffer needs a multiple of 4 bytes; an odd-length f16 tensor gets a zero pad half.
        if bytes.len().is_multiple_of(4) {
            ctx.queue.write_buffer(&self.buffer, 0, bytes);
        } else {
            let mut padded = bytes.to_vec();
            padded.resize(bytes.len().div_ceil(4) * 4, 0);
            ctx.queue.write_buffer(&self.buffer, 0, &padded);
        }
    }

    /// Writes `data` at the start of an f32 tensor (a prefix: a partial batch may be shorter).
    pub fn write_f32(&self, ctx: &GpuContext, data: &[f32]) -> Result<()> {
        self.expect_dtype(DType::F32, "write_f32 destination")?;
        self.expect_len(data.len(), "write_f32 data")?;
        if !data.is_empty() {
            ctx.queue
                .write_buffer(&self.buffer, 0, bytemuck::cast_slice(data));
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of data (without the padding).
    pub fn bytes(&self) -> u64 {
        self.len() as u64 * self.dtype.size()
    }

    /// Overwrites every element (and the padding) with NaN, so unwritten outputs show.
    pub fn poison_nan(&self, ctx: &GpuContext) {
        // 0xFFFF_FFFF is a quiet NaN as one f32 and as each of two f16 halves.
        let words = vec![u32::MAX; (self.buffer.size() / 4) as usize];
        ctx.queue
            .write_buffer(&self.buffer, 0, bytemuck::cast_slice(&words));
    }

    /// The whole buffer as a storage binding, or an error naming the tensor if it is larger than
    /// one binding may be on this adapter.
    pub fn binding(&self, ctx: &GpuContext) -> Result<wgpu::BindingResource<'_>> {
        // Shaders index with u32 and add offsets, strides and grid padding to element indices:
        // bindings of up to 2^31 elements leave that arithmetic room not to wrap.
        let limit = ctx
            .limits
            .max_storage_buffer_binding_size
            .min((1u64 << 31) * self.dtype.size());
        if self.buffer.size() > limit {
            return Err(HebbError::TooLargeForBinding {
                tensor: format!("{} {:?} {}", self.label, self.shape, self.dtype.name()),
                bytes: self.buffer.size(),
                limit,
            });
        }
        Ok(self.buffer.as_entire_binding())
    }

    pub fn expect_dtype(&self, dtype: DType, role: &str) -> Result<()> {
        if self.dtype != dtype {
            return Err(HebbError::Shape {
                tensor: self.label.clone(),
                message: format!("{role} must be {}, got {}", dtype.name(), self.dtype.name()),
            });
        }
        Ok(())
    }

    /// Errors unless the tensor holds at least `needed` elements from its start.
    pub fn expect_len(&self, needed: usize, role: &str) -> Result<()> {
        if self.len() < needed {
            return Err(HebbError::Shape {
                tensor: self.label.clone(),
                message: format!(
                    "{role} needs at least {needed} elements, but shape {:?} holds {}",
                    self.shape,
                    self.len()
                ),
            });
        }
        Ok(())
    }

    /// Copies the tensor to the host (waits for all submitted work).
    pub fn read_bytes(&self, ctx: &GpuContext) -> Result<Vec<u8>> {
        let mut bytes = self.read_words(ctx, 0, self.buffer.size() / 4)?;
        bytes.truncate(self.bytes() as usize);
        Ok(bytes)
    }

    /// The buffer's 32-bit words [first, first + count), as bytes: a readback of one section
    /// of a larger tensor without copying the rest.
    pub fn read_words(&self, ctx: &GpuContext, first: u64, count: u64) -> Result<Vec<u8>> {
        let (start, size) = (4 * first, 4 * count);
        if start + size > self.buffer.size() {
            return Err(HebbError::Shape {
                tensor: self.label.clone(),
                message: format!(
                    "words {first}..{} are past the buffer's {} words",
                    first + count,
                    self.buffer.size() / 4
                ),
            });
        }
        if size == 0 {
            return Ok(Vec::new());
        }
        let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        encoder.copy_buffer_to_buffer(&self.buffer, start, &staging, 0, size);
        ctx.queue.submit([encoder.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        ctx.wait()?;
        rx.recv()
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
            .map_err(|message| HebbError::Gpu {
                during: format!("reading back {}", self.label),
                message,
            })?;
        let bytes = {
            let view = staging.get_mapped_range(..).map_err(|e| HebbError::Gpu {
                during: format!("mapping {}", self.label),
                message: e.to_string(),
            })?;
            view.to_vec()
        };
        staging.unmap();
        Ok(bytes)
    }

    /// The elements as f32 (f16 tensors are widened exactly).
    pub fn to_f32_vec(&self, ctx: &GpuContext) -> Result<Vec<f32>> {
        let bytes = self.read_bytes(ctx)?;
        Ok(match self.dtype {
            DType::F32 => bytemuck::pod_collect_to_vec(&bytes),
            DType::F16 => bytemuck::pod_collect_to_vec::<u8, f16>(&bytes)
                .into_iter()
                .map(f16::to_f32)
                .collect(),
        })
    }

    pub fn to_f16_vec(&self, ctx: &GpuContext) -> Result<Vec<f16>> {
        self.expect_dtype(DType::F16, "to_f16_vec")?;
        Ok(bytemuck::pod_collect_to_vec(&self.read_bytes(ctx)?))
    }
}
