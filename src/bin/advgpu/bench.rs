//! `advgpu bench`: attack throughput on this GPU, as a table or a JSON report
//! (schema in docs/BENCHMARKS.md), and `--compare` of two reports.

use std::path::PathBuf;

use advgpu::bench::{self, BenchConfig, Report, Workload};
use anyhow::{Context, Result};

use crate::common::{progress_bar, GpuChoice};

#[derive(clap::Args)]
pub struct Args {
    /// Workloads to run: forward, forward_backward, pgd_step, pgd10, patch_step.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "forward,forward_backward,pgd_step,pgd10,patch_step"
    )]
    workloads: Vec<String>,
    /// Batch sizes (those that do not fit the device are skipped).
    #[arg(long, value_delimiter = ',', default_value = "1,16,64,256,1024")]
    batches: Vec<usize>,
    /// Timed runs per case, after one warm-up run.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Seconds the timed cases may take; cases estimated not to fit are
    /// skipped. The layer profile and the roofline run after them (about
    /// 25 s more on lavapipe).
    #[arg(long, default_value_t = 240.0)]
    budget: f64,
    /// Also time the adapter's best matrix product at comparable sizes.
    #[arg(long)]
    roofline: bool,
    /// Batch size of the per-layer profile (default: the largest forward_backward run).
    #[arg(long)]
    layers: Option<usize>,
    /// Print the report as JSON on stdout instead of tables.
    #[arg(long)]
    json: bool,
    /// Also write the JSON report to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Compare two JSON reports (A B) instead of measuring: throughput side by side, ratio B / A.
    #[arg(long, num_args = 2, value_names = ["A", "B"])]
    compare: Option<Vec<PathBuf>>,
}

pub fn run(choice: &GpuChoice, args: Args) -> Result<()> {
    if let Some(files) = &args.compare {
        return compare(&files[0], &files[1], args.json);
    }
    let config = BenchConfig {
        workloads: args
            .workloads
            .iter()
            .map(|w| Workload::parse(w))
            .collect::<advgpu::Result<_>>()?,
        batches: args.batches.clone(),
        reps: args.reps,
        budget_seconds: args.budget,
        roofline: args.roofline,
        layer_batch: args.layers,
    };
    config.validate()?;
    let gpu = choice.open()?;

    let total = (config.workloads.len() * config.batches.len()) as u64;
    let bar = progress_bar(total, "bench");
    let report = bench::run(&gpu, &config, |p| {
        bar.set_position(p.done as u64);
        bar.set_prefix(p.what.clone());
    })?;
    bar.finish_and_clear();

    if let Some(path) = &args.out {
        std::fs::write(path, report.to_json())
            .with_context(|| format!("writing --out {}", path.display()))?;
    }
    if args.json {
        println!("{}", report.to_json());
    } else {
        print_report(&report);
    }
    Ok(())
}

fn print_report(r: &Report) {
    let a = &r.adapter;
    println!(
        "advgpu {} bench on {} ({}, {}, driver {} {}), kernels {}, {:.0} s",
        r.advgpu_version,
        a.name,
        a.backend,
        a.device_type,
        a.driver,
        a.driver_info,
        r.kernels,
        r.total_seconds
    );
    println!(
        "{:<17} {:>6} {:>10} {:>10} {:>10} {:>13} {:>8} {:>9} {:>10}",
        "workload",
        "batch",
        "median s",
        "min s",
        "max s",
        "img-steps/s",
        "GFLOP/s",
        "memory",
        "record %"
    );
    for c in &r.cases {
        let Some(s) = &c.seconds else {
            println!(
                "{:<17} {:>6}   skipped: {}",
                c.workload.name(),
                c.batch,
                c.skipped.as_deref().unwrap_or("")
            );
            continue;
        };
        let record = match (c.record_seconds, c.submit_seconds) {
            (Some(rec), Some(sub)) => format!("{:.2}", 100.0 * (rec + sub) / s.median),
            _ => String::new(),
        };
        println!(
            "{:<17} {:>6} {:>10.4} {:>10.4} {:>10.4} {:>13.1} {:>8.2} {:>7.1}MB {:>10}",
            c.workload.name(),
            c.batch,
            s.median,
            s.min,
            s.max,
            c.image_steps_per_second,
            c.gflops,
            c.memory_bytes as f64 / 1e6,
            record
        );
    }
    if let Some(p) = &r.layer_profile {
        println!("\nper layer at batch {} ({} clock):", p.batch, p.clock);
        for l in &p.layers {
            println!(
                "  {:<8} {:>2} {:<10} {:>9.4} s {:>7.2} GFLOP/s  {}",
                l.pass,
                l.layer,
                l.kind,
                l.seconds,
                l.gflops,
                l.kernels.join(" + ")
            );
        }
    }
    if let Some(roof) = &r.roofline {
        println!("\nmatrix products (roofline):");
        for p in &roof.products {
            println!(
                "  {:>5} x {:>6} x {:>5} {:<8} {:>9.4} s {:>7.2} GFLOP/s",
                p.m,
                p.n,
                p.k,
                p.variant.name(),
                p.seconds,
                p.gflops
            );
        }
        println!("  best: {:.2} GFLOP/s", roof.best_gflops);
        for c in r
            .cases
            .iter()
            .filter(|c| c.workload == Workload::Pgd10 && c.seconds.is_some())
        {
            println!(
                "  pgd10 at batch {}: {:.2} GFLOP/s = {:.0}% of the best matrix product",
                c.batch,
                c.gflops,
                100.0 * c.gflops / roof.best_gflops
            );
        }
    }
}

fn compare(a_path: &PathBuf, b_path: &PathBuf, json: bool) -> Result<()> {
    let read = |p: &PathBuf| -> Result<Report> {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        Ok(Report::from_json(&text, &p.display().to_string())?)
    };
    let (a, b) = (read(a_path)?, read(b_path)?);
    let rows = bench::compare(&a, &b);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "a": {"file": a_path.display().to_string(), "adapter": a.adapter.name, "kernels": a.kernels},
                "b": {"file": b_path.display().to_string(), "adapter": b.adapter.name, "kernels": b.kernels},
                "rows": rows,
            }))?
        );
        return Ok(());
    }
    println!(
        "A: {} ({}, kernels {})",
        a.adapter.name,
        a_path.display(),
        a.kernels
    );
    println!(
        "B: {} ({}, kernels {})",
        b.adapter.name,
        b_path.display(),
        b.kernels
    );
    println!(
        "{:<17} {:>6} {:>15} {:>15} {:>8}",
        "workload", "batch", "A img-steps/s", "B img-steps/s", "B / A"
    );
    for row in &rows {
        println!(
            "{:<17} {:>6} {:>15.1} {:>15.1} {:>8.2}",
            row.workload.name(),
            row.batch,
            row.a,
            row.b,
            row.ratio
        );
    }
    if rows.is_empty() {
        println!("(the two reports have no case in common)");
    }
    Ok(())
}
