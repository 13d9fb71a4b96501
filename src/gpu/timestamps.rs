//! GPU-clock timing of a group of dispatches, where the adapter offers
//! timestamp queries.

use crate::error::{Error, Result};
use crate::gpu::{Gpu, Kernel};

/// A query set of two timestamps and the buffers to read them back.
pub struct Timestamps {
    queries: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    staging: wgpu::Buffer,
}

impl Timestamps {
    /// Timestamps on `gpu`, or `None` when its device has no timestamp queries.
    pub fn new(gpu: &Gpu) -> Option<Timestamps> {
        if !gpu
            .device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
        {
            return None;
        }
        let queries = gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count: 2,
        });
        let buffer = |usage| {
            gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamps"),
                size: 16,
                usage,
                mapped_at_creation: false,
            })
        };
        Some(Timestamps {
            queries,
            resolve: buffer(wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC),
            staging: buffer(wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST),
        })
    }

    /// GPU seconds between the start and the end of one compute pass that
    /// runs `kernels`.
    pub fn time(&self, gpu: &Gpu, kernels: &[Kernel]) -> Result<f64> {
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("timed"),
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: &self.queries,
                    beginning_of_pass_write_index: Some(0),
                    end_of_pass_write_index: Some(1),
                }),
            });
            kernels.iter().for_each(|k| k.record(&mut pass));
        }
        encoder.resolve_query_set(&self.queries, 0..2, &self.resolve, 0);
        encoder.copy_buffer_to_buffer(&self.resolve, 0, &self.staging, 0, 16);
        gpu.queue.submit([encoder.finish()]);

        let (tx, rx) = futures_channel::oneshot::channel();
        self.staging.map_async(wgpu::MapMode::Read, .., move |r| {
            // The receiver waits below; a failed send means nobody listens.
            let _ = tx.send(r);
        });
        gpu.wait()?;
        pollster::block_on(rx)
            .map_err(|e| Error::gpu("reading timestamps", e))?
            .map_err(|e| Error::gpu("reading timestamps", e))?;
        let ticks: [u64; 2] = {
            let view = self
                .staging
                .get_mapped_range(..)
                .map_err(|e| Error::gpu("reading timestamps", e))?;
            let words: &[u64] = bytemuck::cast_slice(&view);
            [words[0], words[1]]
        };
        self.staging.unmap();
        let period = f64::from(gpu.queue.get_timestamp_period());
        Ok(ticks[1].saturating_sub(ticks[0]) as f64 * period * 1e-9)
    }
}
