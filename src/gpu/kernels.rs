//! WGSL sources, the pipeline cache, and prepared dispatches.
//!
//! Every shader lives as one file in `shaders/`, compiled into the binary so
//! that it runs from any directory. A shader that needs the random-number
//! generator says so with a line `// #include rng`; [`shader_source`] puts
//! `shaders/rng.wgsl` in front of it. Pipelines are compiled once per
//! (shader, entry point) and shared by every plan on the same [`Gpu`].
//!
//! A [`Kernel`] is a dispatch ready to record: pipeline, bind group and
//! workgroup counts, all created up front so that an attack loop only records.

use std::collections::HashMap;
use std::sync::Mutex;

use wgpu::util::DeviceExt;

use crate::error::{Error, Result};
use crate::gpu::Gpu;

/// Threads per workgroup of every one-dimensional kernel; the shaders declare
/// the same number in `@workgroup_size`.
pub const WORKGROUP: u32 = 64;

/// The shader files, by name.
pub const SHADERS: &[(&str, &str)] = &[
    ("conv2d", include_str!("../../shaders/conv2d.wgsl")),
    (
        "conv2d_tiled",
        include_str!("../../shaders/conv2d_tiled.wgsl"),
    ),
    ("col2im", include_str!("../../shaders/col2im.wgsl")),
    ("linear", include_str!("../../shaders/linear.wgsl")),
    ("relu", include_str!("../../shaders/relu.wgsl")),
    ("pool", include_str!("../../shaders/pool.wgsl")),
    ("normalize", include_str!("../../shaders/normalize.wgsl")),
    ("loss", include_str!("../../shaders/loss.wgsl")),
    ("optim", include_str!("../../shaders/optim.wgsl")),
    ("rng", include_str!("../../shaders/rng.wgsl")),
    (
        "attack_step",
        include_str!("../../shaders/attack_step.wgsl"),
    ),
    ("patch", include_str!("../../shaders/patch.wgsl")),
    (
        "patch_update",
        include_str!("../../shaders/patch_update.wgsl"),
    ),
    ("explain", include_str!("../../shaders/explain.wgsl")),
];

const INCLUDE_RNG: &str = "// #include rng";

/// The complete WGSL source of shader `name`, with its includes resolved.
pub fn shader_source(name: &str) -> Option<String> {
    let (_, text) = SHADERS.iter().find(|(n, _)| *n == name)?;
    if name != "rng" && text.contains(INCLUDE_RNG) {
        let rng = SHADERS.iter().find(|(n, _)| *n == "rng")?.1;
        Some(format!("{rng}\n{text}"))
    } else {
        Some(text.to_string())
    }
}

/// Compiled shader modules and pipelines, keyed by shader and entry point.
#[derive(Default)]
pub struct KernelCache {
    modules: Mutex<HashMap<&'static str, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<(&'static str, &'static str), wgpu::ComputePipeline>>,
}

impl Gpu {
    /// The pipeline for `entry` in shader `shader`, compiled on first use.
    pub fn pipeline(
        &self,
        shader: &'static str,
        entry: &'static str,
    ) -> Result<wgpu::ComputePipeline> {
        let cache = &self.kernels;
        if let Some(p) = lock(&cache.pipelines).get(&(shader, entry)) {
            return Ok(p.clone());
        }

        let module = {
            let mut modules = lock(&cache.modules);
            match modules.get(shader) {
                Some(m) => m.clone(),
                None => {
                    let source = shader_source(shader).ok_or_else(|| {
                        Error::gpu("loading shaders", format!("no shader named {shader:?}"))
                    })?;
                    log::debug!("compiling shader {shader} ({} bytes)", source.len());
                    let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
                    let m = self
                        .device
                        .create_shader_module(wgpu::ShaderModuleDescriptor {
                            label: Some(shader),
                            source: wgpu::ShaderSource::Wgsl(source.into()),
                        });
                    if let Some(e) = pollster::block_on(scope.pop()) {
                        return Err(Error::gpu(format!("compiling shader {shader}"), e));
                    }
                    modules.insert(shader, m.clone());
                    m
                }
            }
        };

        log::debug!("creating pipeline {shader}::{entry}");
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::gpu(
                format!("creating pipeline {shader}::{entry}"),
                e,
            ));
        }
        lock(&cache.pipelines).insert((shader, entry), pipeline.clone());
        Ok(pipeline)
    }

    /// A dispatch of `shader::entry` over `threads` invocations (rounded up to
    /// whole workgroups), with `params` as the uniform at binding 0 and
    /// `buffers` at the given binding numbers.
    pub fn kernel<P: bytemuck::Pod>(
        &self,
        shader: &'static str,
        entry: &'static str,
        params: &P,
        buffers: &[(u32, &wgpu::Buffer)],
        threads: u64,
    ) -> Result<Kernel> {
        let uniform = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(entry),
                contents: bytemuck::bytes_of(params),
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            });
        self.kernel_with_uniform(shader, entry, &uniform, buffers, threads)
    }

    /// As [`Gpu::kernel`], with a uniform buffer the caller keeps in order to
    /// rewrite it between submissions (a learning rate, a step counter).
    pub fn kernel_with_uniform(
        &self,
        shader: &'static str,
        entry: &'static str,
        uniform: &wgpu::Buffer,
        buffers: &[(u32, &wgpu::Buffer)],
        threads: u64,
    ) -> Result<Kernel> {
        let pipeline = self.pipeline(shader, entry)?;
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: uniform.as_entire_binding(),
        }];
        entries.extend(buffers.iter().map(|(binding, b)| wgpu::BindGroupEntry {
            binding: *binding,
            resource: b.as_entire_binding(),
        }));

        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(entry),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::gpu(
                format!("binding buffers for {shader}::{entry}"),
                e,
            ));
        }

        Ok(Kernel {
            pipeline,
            bind_group,
            groups: self.workgroups(threads)?,
            shader,
            name: entry,
        })
    }

    /// Workgroup counts for `threads` invocations of a [`WORKGROUP`]-wide
    /// kernel. Counts beyond the per-dimension limit spill into `y`; the
    /// shaders rebuild the linear index as `gid.x + gid.y * num_workgroups.x * 64`.
    fn workgroups(&self, threads: u64) -> Result<[u32; 3]> {
        let groups = threads.div_ceil(u64::from(WORKGROUP)).max(1);
        let max = u64::from(self.limits.max_compute_workgroups_per_dimension);
        let x = groups.min(max);
        let y = groups.div_ceil(x);
        if y > max {
            return Err(Error::gpu(
                "planning a dispatch",
                format!("{threads} threads need {groups} workgroups, more than {max} x {max}"),
            ));
        }
        Ok([x as u32, y as u32, 1])
    }
}

/// Locks a cache map. A poisoned lock only means another thread panicked
/// while inserting; the map itself is still consistent, so it is used as is.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One prepared dispatch.
#[derive(Clone, Debug)]
pub struct Kernel {
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    groups: [u32; 3],
    /// The shader file, for profiling labels.
    pub shader: &'static str,
    /// The entry point, for profiling labels.
    pub name: &'static str,
}

impl Kernel {
    /// Records this dispatch into an open compute pass.
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.dispatch_workgroups(self.groups[0], self.groups[1], self.groups[2]);
    }
}

/// Records `kernels` in order into one compute pass of `encoder`.
pub fn record_all(encoder: &mut wgpu::CommandEncoder, kernels: &[&Kernel]) {
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: None,
        timestamp_writes: None,
    });
    for k in kernels {
        k.record(&mut pass);
    }
}
