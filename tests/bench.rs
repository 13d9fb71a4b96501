//! The benchmark: its FLOP formula, a small run that fills the documented
//! schema, the time budget, and `--compare`.

mod common;

use advgpu::bench::{self, BenchConfig, Report, Workload, SCHEMA};
use advgpu::data::small_cnn;
use advgpu::nn::Model;
use common::gpu;

#[test]
fn the_bundled_architecture_costs_the_documented_flops() {
    // conv 389,376 + 10,616,832 + 3,686,400 + 4,718,592; linear 409,600 +
    // 80,000 + 4,000; ReLU and pools one per value read: 19,978,288.
    let model = Model::init(small_cnn(), [1, 28, 28], 0).unwrap();
    assert_eq!(model.forward_flops().unwrap(), 19_978_288);
}

fn small_run() -> Report {
    let config = BenchConfig {
        workloads: vec![
            Workload::Forward,
            Workload::PgdStep,
            Workload::Pgd10,
            Workload::PatchStep,
        ],
        batches: vec![1, 2],
        reps: 2,
        budget_seconds: 600.0,
        roofline: false,
        layer_batch: Some(1),
    };
    bench::run(gpu(), &config, |_| {}).unwrap()
}

#[test]
fn a_small_run_fills_every_documented_field() {
    let report = small_run();
    assert_eq!(report.schema, SCHEMA);
    assert_eq!(report.cases.len(), 8);
    for c in &report.cases {
        let s = c.seconds.expect("every case ran");
        assert!(
            s.min <= s.median && s.median <= s.max && s.min > 0.0,
            "{c:?}"
        );
        let steps = if c.workload == Workload::Pgd10 { 10 } else { 1 };
        let rate = (c.batch as u64 * steps) as f64 / s.median;
        let per_pass = 19_978_288 * c.batch as u64;
        let passes = match c.workload {
            Workload::Forward => 1,
            // Ten steps of forward and backward, and the keep-best forward.
            Workload::Pgd10 => 21,
            _ => 2,
        };
        assert_eq!(c.flops, per_pass * passes, "{:?}", c.workload);
        assert!((c.image_steps_per_second - rate).abs() <= 1e-9 * rate);
        assert!(c.memory_bytes > 0);
        let stepped = matches!(c.workload, Workload::PgdStep | Workload::PatchStep);
        assert_eq!(c.record_seconds.is_some(), stepped);
    }
    let profile = report.layer_profile.as_ref().unwrap();
    // 11 forward layers with dispatches (flatten has none, and the four
    // ReLUs after convolutions are fused into them), 15 backward.
    assert_eq!(profile.layers.len(), 26);
    assert!(report.roofline.is_none());

    let again = Report::from_json(&report.to_json(), "round trip").unwrap();
    assert_eq!(again.cases.len(), report.cases.len());
    let rows = bench::compare(&report, &again);
    assert_eq!(rows.len(), 8);
    assert!(rows.iter().all(|r| (r.ratio - 1.0).abs() < 1e-12));
}

#[test]
fn cases_that_would_overrun_the_budget_are_skipped_with_a_reason() {
    let config = BenchConfig {
        workloads: vec![Workload::Forward],
        batches: vec![1, 100_000],
        reps: 1,
        budget_seconds: 30.0,
        roofline: false,
        layer_batch: None,
    };
    let report = bench::run(gpu(), &config, |_| {}).unwrap();
    assert!(report.cases[0].skipped.is_none());
    let reason = report.cases[1].skipped.as_deref().unwrap();
    // 100,000 images exceed the binding limit of any device this runs on,
    // or the budget: either way the reason names the batch or the estimate.
    assert!(
        reason.contains("100000") || reason.contains("budget"),
        "{reason}"
    );
    assert!(report.case(Workload::Forward, 100_000).is_none());
}

#[test]
fn a_file_of_another_schema_is_refused() {
    let err = Report::from_json(r#"{"schema": "other/2"}"#, "old.json").unwrap_err();
    assert!(
        err.to_string().contains("other/2") && err.to_string().contains(SCHEMA),
        "{err}"
    );
    let bad = BenchConfig {
        reps: 0,
        ..BenchConfig::default()
    };
    assert!(bad.validate().unwrap_err().to_string().contains("reps"));
}

#[test]
fn the_roofline_times_every_size_in_every_variant() {
    let roof = bench::roofline(gpu(), &[(64, 96, 32), (8, 8, 8)], 1).unwrap();
    assert_eq!(roof.products.len(), 4);
    let best = roof.products.iter().map(|p| p.gflops).fold(0.0, f64::max);
    assert_eq!(roof.best_gflops, best);
    for p in &roof.products {
        let want = 2.0 * f64::from(p.m) * f64::from(p.n) * f64::from(p.k) / p.seconds / 1e9;
        assert!((p.gflops - want).abs() <= 1e-9 * want && p.gflops > 0.0);
    }
}

#[test]
fn cases_run_batch_by_batch_and_are_reported_by_workload() {
    let config = BenchConfig {
        workloads: vec![Workload::Forward, Workload::ForwardBackward],
        batches: vec![1, 2],
        reps: 1,
        budget_seconds: 600.0,
        roofline: false,
        layer_batch: Some(1),
    };
    let mut ran = Vec::new();
    let report = bench::run(gpu(), &config, |p| ran.push(p.what.clone())).unwrap();
    // A budget that runs out then skips the largest batch of every
    // workload, not whole workloads.
    assert_eq!(
        ran,
        [
            "forward batch 1",
            "forward_backward batch 1",
            "forward batch 2",
            "forward_backward batch 2"
        ]
    );
    let order: Vec<_> = report.cases.iter().map(|c| (c.workload, c.batch)).collect();
    assert_eq!(
        order,
        [
            (Workload::Forward, 1),
            (Workload::Forward, 2),
            (Workload::ForwardBackward, 1),
            (Workload::ForwardBackward, 2)
        ]
    );
}
