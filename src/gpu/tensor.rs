//! Tensors on GPU buffers, and reading them back.
//!
//! A [`GpuTensor`] is a storage buffer plus its shape. Layout is always
//! row-major f32 (or u32 for labels), images NCHW: `[batch, channels, height,
//! width]`. Every allocation goes through [`Gpu::buffer`], which checks the
//! size against the device's limits so that an oversized batch is an error,
//! not a device loss.

use wgpu::util::DeviceExt;

use crate::error::{Error, Result};
use crate::gpu::Gpu;

/// A storage buffer with a shape.
#[derive(Clone, Debug)]
pub struct GpuTensor {
    /// The buffer: `STORAGE | COPY_SRC | COPY_DST`.
    pub buffer: wgpu::Buffer,
    /// The shape, outermost dimension first.
    pub shape: Vec<usize>,
}

impl GpuTensor {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// Number of elements of `shape`, or an error if it overflows.
pub fn checked_len(what: &str, shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::Shape {
            what: what.to_string(),
            expected: "a size that fits in memory".into(),
            got: format!("{shape:?}"),
        })
}

impl Gpu {
    /// Bytes of a 4-byte-element tensor of `shape`, checked against the
    /// device's binding limit.
    fn checked_bytes(&self, what: &str, shape: &[usize]) -> Result<u64> {
        // Zero-sized bindings are not allowed; a 1-element buffer stands in.
        let len = checked_len(what, shape)?.max(1) as u64;
        let needed = len.saturating_mul(4);
        let limit = self.max_binding_bytes();
        if needed > limit {
            return Err(Error::BufferTooLarge {
                what: what.to_string(),
                needed,
                limit,
            });
        }
        Ok(needed)
    }

    /// A zero-filled tensor of 4-byte elements.
    pub fn zeros(&self, what: &str, shape: &[usize]) -> Result<GpuTensor> {
        let size = self.checked_bytes(what, shape)?;
        log::debug!("buffer {what}: {shape:?}, {size} bytes");
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(what),
            size,
            usage: STORAGE,
            mapped_at_creation: false,
        });
        Ok(GpuTensor {
            buffer,
            shape: shape.to_vec(),
        })
    }

    /// A tensor holding `data` (f32 or u32), which must have `shape`'s length.
    pub fn upload<T: bytemuck::Pod>(
        &self,
        what: &str,
        shape: &[usize],
        data: &[T],
    ) -> Result<GpuTensor> {
        let len = checked_len(what, shape)?;
        if data.len() != len || std::mem::size_of::<T>() != 4 {
            return Err(Error::Shape {
                what: what.to_string(),
                expected: format!("{len} four-byte elements for shape {shape:?}"),
                got: format!(
                    "{} elements of {} bytes",
                    data.len(),
                    std::mem::size_of::<T>()
                ),
            });
        }
        self.checked_bytes(what, shape)?;
        let contents: &[u8] = if data.is_empty() {
            &[0; 4]
        } else {
            bytemuck::cast_slice(data)
        };
        let buffer = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(what),
                contents,
                usage: STORAGE,
            });
        Ok(GpuTensor {
            buffer,
            shape: shape.to_vec(),
        })
    }

    /// Overwrites `tensor` with `data` (queued; takes effect before the next submission).
    pub fn write<T: bytemuck::Pod>(&self, tensor: &GpuTensor, data: &[T]) -> Result<()> {
        if data.len() != tensor.len() || std::mem::size_of::<T>() != 4 {
            return Err(Error::Shape {
                what: tensor.buffer_label(),
                expected: format!("{} four-byte elements", tensor.len()),
                got: format!(
                    "{} elements of {} bytes",
                    data.len(),
                    std::mem::size_of::<T>()
                ),
            });
        }
        if !data.is_empty() {
            self.queue
                .write_buffer(&tensor.buffer, 0, bytemuck::cast_slice(data));
        }
        Ok(())
    }

    /// Reads a whole tensor back to the host.
    ///
    /// Async at its core so that it also works where nothing may block (the
    /// browser); [`Gpu::read_blocking`] wraps it for native code.
    pub async fn read<T: bytemuck::Pod>(&self, tensor: &GpuTensor) -> Result<Vec<T>> {
        let bytes = (tensor.len() * 4) as u64;
        if bytes == 0 {
            return Ok(Vec::new());
        }
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(&tensor.buffer, 0, &staging, 0, bytes);
        self.queue.submit([encoder.finish()]);

        let (tx, rx) = futures_channel::oneshot::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            // The receiver lives until the poll below returns; a failed send
            // can only mean the caller is gone, and then nobody needs the result.
            let _ = tx.send(r);
        });
        // Native backends deliver the callback during a poll; on the web the
        // poll returns at once and the browser's event loop delivers it.
        self.wait()?;
        rx.await
            .map_err(|e| Error::gpu("reading a buffer back", e))?
            .map_err(|e| Error::gpu("reading a buffer back", e))?;

        let view = staging
            .get_mapped_range(..)
            .map_err(|e| Error::gpu("reading a buffer back", e))?;
        let out = bytemuck::cast_slice::<u8, T>(&view).to_vec();
        drop(view);
        staging.unmap();
        Ok(out)
    }

    /// Blocking form of [`Gpu::read`].
    pub fn read_blocking<T: bytemuck::Pod>(&self, tensor: &GpuTensor) -> Result<Vec<T>> {
        pollster::block_on(self.read(tensor))
    }
}

impl GpuTensor {
    fn buffer_label(&self) -> String {
        format!("tensor of shape {:?}", self.shape)
    }
}
