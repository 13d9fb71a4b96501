//! `advgpu info`: adapters, the chosen one, its limits and features.

use anyhow::Result;
use serde_json::json;

use crate::common::{print_json, GpuChoice};

#[derive(clap::Args)]
pub struct Args {
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(choice: &GpuChoice, args: Args) -> Result<()> {
    let adapters = pollster::block_on(advgpu::gpu::list_adapters());
    let gpu = choice.open()?;
    let l = &gpu.limits;
    let limits = json!({
        "max_storage_buffer_binding_size": l.max_storage_buffer_binding_size,
        "max_buffer_size": l.max_buffer_size,
        "max_compute_workgroups_per_dimension": l.max_compute_workgroups_per_dimension,
        "max_compute_invocations_per_workgroup": l.max_compute_invocations_per_workgroup,
        "max_compute_workgroup_storage_size": l.max_compute_workgroup_storage_size,
        "max_storage_buffers_per_shader_stage": l.max_storage_buffers_per_shader_stage,
    });
    let features = format!("{:?}", gpu.device.features());
    if args.json {
        let list: Vec<_> = adapters
            .iter()
            .map(|a| json!({"name": a.name, "backend": format!("{:?}", a.backend), "device_type": format!("{:?}", a.device_type), "driver": a.driver, "driver_info": a.driver_info}))
            .collect();
        return print_json(&json!({
            "adapters": list,
            "chosen": {"name": gpu.info.name, "backend": format!("{:?}", gpu.info.backend), "driver": gpu.info.driver, "driver_info": gpu.info.driver_info},
            "limits": limits,
            "features": features,
        }));
    }
    println!("adapters:");
    for a in &adapters {
        let mark = if a.name == gpu.info.name && a.backend == gpu.info.backend {
            "*"
        } else {
            " "
        };
        println!(
            " {mark} {} ({:?}, {:?}, driver {} {})",
            a.name, a.backend, a.device_type, a.driver, a.driver_info
        );
    }
    println!("chosen: {} ({:?})", gpu.info.name, gpu.info.backend);
    println!("limits:");
    if let Some(map) = limits.as_object() {
        for (k, v) in map {
            println!("  {k:<40} {v}");
        }
    }
    println!("features: {features}");
    Ok(())
}
