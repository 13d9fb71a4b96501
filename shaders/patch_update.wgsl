// The patch optimiser: total-variation penalty, Adam or signed step, clip.
//
// Layout: patch, grad, m, v [C, ph, pw]; mask [ph, pw]; counter [1] u32, the
// steps taken so far (t - 1 during step t).
//
// `grad` arrives holding g = d(-L)/dP, the gradient of the negated mean
// targeted cross-entropy (the plan's loss sign is -1), so every rule below
// ascends g. With the optional penalty weight tv > 0:
//   TV(P) = sum_c sum over neighbour pairs (k, k') inside the mask of (P[c,k] - P[c,k'])^2
//   g    <- g - tv * dTV/dP,   dTV/dP[c,k] = 2 * sum_{k' ~ k, M_k' > 0} (P[c,k] - P[c,k'])
// (pairs: left-right and up-down neighbours; a pixel outside the mask has
// g = 0 and never moves). Then
//   adam: m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2    (Kingma and Ba 2015)
//         P = clip01(P + lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps))
//   sign: P = clip01(P + lr * sign(g))
// and `advance` counts the step.
//
// Bindings: 0 params (uniform); 1 patch; 2 mask; 3 grad; 4 m; 5 v; 6 counter.
// Dispatch: 64-wide workgroups, per patch value (C * ph * pw); advance: 1.

struct Params {
    len: u32,       // C * ph * pw
    patch_h: u32,
    patch_w: u32,
    _pad: u32,
    lr: f32,
    tv: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    _pad1: u32,
    _pad2: u32,
    _pad3: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> patch_values: array<f32>;
@group(0) @binding(2) var<storage, read> mask: array<f32>;
@group(0) @binding(3) var<storage, read_write> grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> m: array<f32>;
@group(0) @binding(5) var<storage, read_write> v: array<f32>;
@group(0) @binding(6) var<storage, read_write> counter: array<u32>;

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 64u;
}

// Per patch value: subtracts tv * dTV/dP from the gradient. Reads the patch
// only; the step kernels that write it run after this one.
@compute @workgroup_size(64)
fn tv(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = linear_id(gid, nwg);
    if k >= p.len {
        return;
    }
    let area = p.patch_h * p.patch_w;
    let q = k % area;
    if mask[q] == 0.0 {
        return;
    }
    let base = k - q;
    let i = q / p.patch_w;
    let j = q % p.patch_w;
    let here = patch_values[k];
    var d = 0.0;
    if j > 0u && mask[q - 1u] != 0.0 {
        d += here - patch_values[base + q - 1u];
    }
    if j + 1u < p.patch_w && mask[q + 1u] != 0.0 {
        d += here - patch_values[base + q + 1u];
    }
    if i > 0u && mask[q - p.patch_w] != 0.0 {
        d += here - patch_values[base + q - p.patch_w];
    }
    if i + 1u < p.patch_h && mask[q + p.patch_w] != 0.0 {
        d += here - patch_values[base + q + p.patch_w];
    }
    grad[k] -= p.tv * 2.0 * d;
}

@compute @workgroup_size(64)
fn adam(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = linear_id(gid, nwg);
    if k >= p.len {
        return;
    }
    let t = f32(counter[0] + 1u);
    let g = grad[k];
    m[k] = p.beta1 * m[k] + (1.0 - p.beta1) * g;
    v[k] = p.beta2 * v[k] + (1.0 - p.beta2) * g * g;
    let m_hat = m[k] / (1.0 - pow(p.beta1, t));
    let v_hat = v[k] / (1.0 - pow(p.beta2, t));
    patch_values[k] = clamp(patch_values[k] + p.lr * m_hat / (sqrt(v_hat) + p.eps), 0.0, 1.0);
}

@compute @workgroup_size(64)
fn sign_step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = linear_id(gid, nwg);
    if k >= p.len {
        return;
    }
    patch_values[k] = clamp(patch_values[k] + p.lr * sign(grad[k]), 0.0, 1.0);
}

// One invocation: counts the step, after every kernel of the step has read the counter.
@compute @workgroup_size(1)
fn advance() {
    // Reading p keeps the uniform in this entry's layout, as in every kernel.
    if p.len > 0u {
        counter[0] += 1u;
    }
}
