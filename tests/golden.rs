//! The engine against an independent framework: logits, loss and gradients of
//! a small model that uses every layer type, computed by JAX
//! (`tests/fixtures/make_golden.py`) and committed as fixtures.

mod common;

use advgpu::nn::{cpu, GpuModel, Model, Plan, PlanOptions};
use safetensors::SafeTensors;

struct Expected {
    bytes: Vec<u8>,
}

impl Expected {
    fn load() -> Expected {
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/golden_expected.safetensors"
        ))
        .unwrap();
        Expected { bytes }
    }

    fn f32(&self, name: &str) -> Vec<f32> {
        let st = SafeTensors::deserialize(&self.bytes).unwrap();
        let t = st.tensor(name).unwrap();
        t.data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect()
    }

    fn labels(&self) -> Vec<u32> {
        let st = SafeTensors::deserialize(&self.bytes).unwrap();
        let t = st.tensor("labels").unwrap();
        t.data()
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes(b.try_into().unwrap()) as u32)
            .collect()
    }
}

fn golden_model() -> Model {
    Model::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/golden_model.safetensors"
    ))
    .unwrap()
}

#[test]
fn gpu_logits_loss_and_gradients_match_jax() {
    let gpu = common::gpu();
    let model = golden_model();
    let exp = Expected::load();
    let labels = exp.labels();
    let n = labels.len();

    let gm = GpuModel::new(gpu, &model).unwrap();
    let plan = Plan::new(
        gpu,
        &gm,
        n,
        PlanOptions {
            input_grad: true,
            weight_grads: true,
            guided_relu: false,
        },
    )
    .unwrap();
    plan.set_loss(gpu, 1.0 / n as f32, 1.0);
    plan.write_batch(gpu, &exp.f32("input"), &labels).unwrap();
    plan.run(gpu).unwrap();

    let read = |t| gpu.read_blocking::<f32>(t).unwrap();
    common::assert_close(
        "logits",
        &read(plan.logits()),
        &exp.f32("logits"),
        1e-4,
        1e-5,
    );
    common::assert_close("loss", &read(&plan.loss), &exp.f32("loss"), 1e-4, 1e-5);
    common::assert_close(
        "grad_input",
        &read(plan.grad_input()),
        &exp.f32("grad_input"),
        1e-3,
        1e-6,
    );
    for (i, layer) in model.layers.iter().enumerate() {
        for ((suffix, _), g) in layer.param_shapes().iter().zip(&plan.grad_params[i]) {
            let name = format!("grad.{i}.{suffix}");
            common::assert_close(&name, &read(g), &exp.f32(&name), 1e-3, 1e-6);
        }
    }
}

#[test]
fn cpu_reference_matches_jax() {
    let model = golden_model();
    let exp = Expected::load();
    let labels: Vec<usize> = exp.labels().iter().map(|&l| l as usize).collect();
    let x = advgpu::nn::Tensor::new(vec![labels.len(), 2, 15, 19], exp.f32("input")).unwrap();
    let g = cpu::loss_and_gradients(&model, &x, &labels).unwrap();
    common::assert_close("logits", &g.logits.data, &exp.f32("logits"), 1e-5, 1e-6);
    common::assert_close("loss", &g.loss, &exp.f32("loss"), 1e-5, 1e-6);
    common::assert_close(
        "grad_input",
        &g.grad_input.data,
        &exp.f32("grad_input"),
        1e-4,
        1e-7,
    );
    for (i, layer) in model.layers.iter().enumerate() {
        for ((suffix, _), t) in layer.param_shapes().iter().zip(&g.grad_params[i]) {
            let name = format!("grad.{i}.{suffix}");
            common::assert_close(&name, &t.data, &exp.f32(&name), 1e-4, 1e-7);
        }
    }
}
