// Optimiser updates for training, one invocation per parameter.
//
// Layout: param, grad, and the optimiser state m, v: flat [len] each.
//
//   sgd:  m = momentum * m + (grad + weight_decay * param);  param -= lr * m
//   adam: (Kingma and Ba 2015)
//         m = beta1 * m + (1 - beta1) * grad
//         v = beta2 * v + (1 - beta2) * grad^2
//         param -= lr * (m / c1) / (sqrt(v / c2) + eps),  c1 = 1 - beta1^t, c2 = 1 - beta2^t
//         (weight decay, when set, is added to grad first, as in PyTorch's Adam)
//
// The host rewrites the uniform before each step (learning-rate schedule, t).
//
// Bindings: 0 params (uniform); 1 param; 2 grad; 3 m; 4 v.
// Dispatch: 64-wide workgroups, linear index gid.x + gid.y * num_workgroups.x * 64.

struct Params {
    len: u32,
    _pad: u32,
    lr: f32,
    momentum: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    c1: f32,
    c2: f32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;

@compute @workgroup_size(64)
fn sgd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if i >= p.len {
        return;
    }
    let g = grad[i] + p.weight_decay * param[i];
    m[i] = p.momentum * m[i] + g;
    param[i] -= p.lr * m[i];
}

@compute @workgroup_size(64)
fn adam(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if i >= p.len {
        return;
    }
    let g = grad[i] + p.weight_decay * param[i];
    m[i] = p.beta1 * m[i] + (1.0 - p.beta1) * g;
    v[i] = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
    param[i] -= p.lr * (m[i] / p.c1) / (sqrt(v[i] / p.c2) + p.eps);
}
