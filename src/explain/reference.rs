//! A CPU reference of every attribution method, for tests and for anyone
//! checking the GPU.
//!
//! It follows `shaders/explain.wgsl` rule for rule on top of the CPU
//! reference layers in [`crate::nn::cpu`], drawing the same Philox noise; it
//! differs only in the order of floating-point sums (and takes plain means
//! where the GPU keeps running means).

use crate::attack::reference::{normal, philox2x32, philox_key};
use crate::error::Result;
use crate::explain::{
    check_classes, resolve_class, window_corner, Attributions, ClassChoice, Finish, Input, Method,
};
use crate::nn::{cpu, Layer, Model, Tensor};

/// Logits `[n, K]` and the gradient of each image's class-`classes[i]`
/// logit with respect to its input, `[n, C, H, W]`. With `guided`, every
/// ReLU passes back only positive gradients (guided backpropagation).
pub fn score_gradient(
    model: &Model,
    x: &Tensor,
    classes: &[u32],
    guided: bool,
) -> (Tensor, Tensor) {
    let acts = cpu::forward(model, x);
    let logits = acts
        .last()
        .expect("forward returns the input at least")
        .clone();
    let k = logits.shape[1];
    let mut g = Tensor::zeros(logits.shape.clone());
    for (i, c) in classes.iter().enumerate() {
        g.data[i * k + *c as usize] = 1.0;
    }
    for (i, layer) in model.layers.iter().enumerate().rev() {
        g = match layer {
            Layer::Relu if guided => Tensor {
                shape: g.shape.clone(),
                data: acts[i]
                    .data
                    .iter()
                    .zip(&g.data)
                    .map(|(x, gy)| if *x > 0.0 { gy.max(0.0) } else { 0.0 })
                    .collect(),
            },
            _ => cpu::layer_backward(layer, &model.params[i], &acts[i], &g).0,
        };
    }
    (logits, g)
}

/// Attributions of `x` by `method`, computed on the CPU.
pub fn attributions(
    model: &Model,
    method: &dyn Method,
    x: &[f32],
    class: &ClassChoice,
) -> Result<Attributions> {
    let spec = method.spec();
    let shape = model.input_shape;
    spec.validate(shape)?;
    let d = model.input_len();
    let n = x.len() / d;
    let k = model.num_classes();
    check_classes(class, n, k)?;
    let batch_shape: Vec<usize> = std::iter::once(n).chain(shape).collect();
    let tensor = |data: Vec<f32>| Tensor::new(batch_shape.clone(), data);
    let logits_of = |data: Vec<f32>| -> Result<Tensor> {
        Ok(cpu::forward(model, &tensor(data)?)
            .pop()
            .expect("forward returns the input at least"))
    };

    let logits = logits_of(x.to_vec())?;
    let classes: Vec<u32> = (0..n)
        .map(|i| resolve_class(class, i, &logits.data[i * k..(i + 1) * k]))
        .collect();
    let scores: Vec<f32> = (0..n)
        .map(|i| logits.data[i * k + classes[i] as usize])
        .collect();
    let gradient_at = |data: Vec<f32>| -> Result<Vec<f32>> {
        Ok(score_gradient(model, &tensor(data)?, &classes, spec.guided)
            .1
            .data)
    };
    let mean_over = |copies: usize, make: &dyn Fn(usize) -> Vec<f32>| -> Result<Vec<f32>> {
        let mut sum = vec![0f64; n * d];
        for j in 0..copies {
            for (s, g) in sum.iter_mut().zip(gradient_at(make(j))?) {
                *s += f64::from(g);
            }
        }
        Ok(sum.iter().map(|s| (s / copies as f64) as f32).collect())
    };

    let mut baseline_scores = None;
    let mean = match &spec.input {
        Input::Image => gradient_at(x.to_vec())?,
        Input::Noise {
            sigma,
            samples,
            seed,
        } => {
            let key = philox_key(*seed);
            mean_over(*samples, &|j| {
                (0..n * d)
                    .map(|v| x[v] + sigma * normal(philox2x32(key, [v as u32, j as u32])))
                    .collect()
            })?
        }
        Input::Path { baseline, steps } => {
            let b = *baseline;
            let at_baseline = logits_of(vec![b; n * d])?;
            baseline_scores = Some(
                (0..n)
                    .map(|i| at_baseline.data[i * k + classes[i] as usize])
                    .collect(),
            );
            mean_over(*steps, &|j| {
                let alpha = (j as f32 + 0.5) / *steps as f32;
                x.iter().map(|v| b + alpha * (v - b)).collect()
            })?
        }
        Input::Occlude {
            window,
            stride,
            fill,
        } => occlusion(
            model, x, &classes, &scores, *window, *stride, *fill, &logits_of,
        )?,
    };
    let maps = match spec.finish {
        Finish::Mean | Finish::MeanDrop => mean,
        Finish::TimesInput => mean.iter().zip(x).map(|(g, v)| g * v).collect(),
        Finish::TimesDelta => {
            let b = match spec.input {
                Input::Path { baseline, .. } => baseline,
                _ => 0.0,
            };
            mean.iter().zip(x).map(|(g, v)| g * (v - b)).collect()
        }
    };
    Ok(Attributions {
        maps,
        d,
        classes,
        logits: logits.data,
        scores,
        baseline_scores,
    })
}

/// Per pixel, the mean score drop over the occluder windows covering it.
#[allow(clippy::too_many_arguments)]
fn occlusion(
    model: &Model,
    x: &[f32],
    classes: &[u32],
    scores: &[f32],
    window: usize,
    stride: usize,
    fill: f32,
    logits_of: &dyn Fn(Vec<f32>) -> Result<Tensor>,
) -> Result<Vec<f32>> {
    let [c, h, w] = model.input_shape;
    let (d, k, n) = (c * h * w, model.num_classes(), classes.len());
    let positions = crate::explain::Occlusion {
        window,
        stride,
        fill,
    }
    .spec()
    .copies(model.input_shape);
    let mut sum = vec![0f64; n * d];
    let mut count = vec![0u32; d];
    for j in 0..positions {
        let (y0, x0) = window_corner(model.input_shape, window, stride, j);
        let inside = |e: usize| {
            let (y, xx) = ((e % (h * w)) / w, e % w);
            (y0..y0 + window).contains(&y) && (x0..x0 + window).contains(&xx)
        };
        let covered: Vec<f32> = (0..n * d)
            .map(|v| if inside(v % d) { fill } else { x[v] })
            .collect();
        let logits = logits_of(covered)?;
        for e in (0..d).filter(|e| inside(*e)) {
            count[e] += 1;
            for i in 0..n {
                let drop = scores[i] - logits.data[i * k + classes[i] as usize];
                sum[i * d + e] += f64::from(drop);
            }
        }
    }
    Ok(sum
        .iter()
        .enumerate()
        .map(|(v, s)| (s / f64::from(count[v % d].max(1))) as f32)
        .collect())
}
