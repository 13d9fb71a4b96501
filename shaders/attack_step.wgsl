// The gradient-attack skeleton: start, step, project, clip, early stop and
// keep-best, on GPU buffers. The model's forward and backward passes run
// between these kernels; this file never sees the network.
//
// Layout: x0, x, grad, scratch, best_x [N, D] (D = C*H*W values per sample,
// NCHW); state [N] one SampleState per sample; pred, labels [N] u32; loss [N].
// `labels` holds the class the loss is taken against: the true label for
// untargeted attacks, the target for targeted ones.
//
// With g the gradient of (sign * loss) with respect to x (sign = +1
// untargeted, -1 targeted, so the step always ascends g):
//   Linf:    x <- clip01(clamp(x + alpha * sign(g), x0 - eps, x0 + eps))
//   MI-FGSM: m <- mu * m + g / mean(|g|);  x <- clip01(clamp(x + alpha * sign(m), ...))
//   L2:      x <- x + alpha * g / ||g||_2;  delta <- delta * min(1, eps / ||delta||_2);
//            x <- clip01(x0 + delta)
//   masked:  (Sharif, Bhagavatula, Bauer and Reiter 2016) inside the mask
//            x <- clip01(x + alpha * sign(g)), no eps bound; outside x <- x0,
//            so those values stay bit-identical to the clean image
// Clipping to [0, 1] only moves x towards x0 (x0 is in [0, 1]), so it never
// breaks the eps bound. Random starts draw from Philox (rng.wgsl) with the
// counter (global value index, restart), so a sample's noise does not depend
// on how the batch was split.
//
// Bindings: 0 params (uniform); 1 x0; 2 x; 3 grad; 4 scratch; 5 state;
// 6 pred; 7 labels; 8 loss; 9 best_x; 10 mask [D] (1 inside, 0 outside).
// Dispatch: 64-wide workgroups, per value (N*D) or per sample (N) as named.

// #include rng

struct Params {
    n: u32,             // samples in this batch (the rest of the buffer is padding)
    d: u32,             // values per sample
    offset: u32,        // global index of sample 0, for the random counters
    key: u32,           // Philox key from the seed
    restart: u32,       // restart number, from 0
    targeted: u32,      // 1: success means pred == labels; 0: pred != labels
    early_stop: u32,    // 1: a successful sample stops changing
    random_start: u32,  // 1: start uniformly inside the eps-ball
    eps: f32,
    alpha: f32,
    mu: f32,            // MI-FGSM momentum decay; 0 for other attacks
    sign: f32,          // +1 untargeted, -1 targeted (objective = sign * loss)
}

struct SampleState {
    running: u32,    // 1 while the sample still takes steps
    steps: u32,      // steps taken
    success: u32,    // the kept result fools the model (or hits the target)
    pred: u32,       // the model's class for the kept result
    objective: f32,  // sign * loss of the kept result
    stat: f32,       // per-sample scratch: a gradient or delta norm
    radius: f32,     // L2 random start radius
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x0: array<f32>;
@group(0) @binding(2) var<storage, read_write> x: array<f32>;
@group(0) @binding(3) var<storage, read> grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> scratch: array<f32>;
@group(0) @binding(5) var<storage, read_write> state: array<SampleState>;
@group(0) @binding(6) var<storage, read> pred: array<u32>;
@group(0) @binding(7) var<storage, read> labels: array<u32>;
@group(0) @binding(8) var<storage, read> loss: array<f32>;
@group(0) @binding(9) var<storage, read_write> best_x: array<f32>;
@group(0) @binding(10) var<storage, read> mask: array<f32>;

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 64u;
}

fn succeeded(s: u32) -> bool {
    if p.targeted != 0u {
        return pred[s] == labels[s];
    }
    return pred[s] != labels[s];
}

// Per sample: a fresh state before the first restart.
@compute @workgroup_size(64)
fn init(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let s = linear_id(gid, nwg);
    if s >= arrayLength(&state) {
        return;
    }
    var st: SampleState;
    st.running = select(0u, 1u, s < p.n);
    st.steps = 0u;
    st.success = 0u;
    st.pred = 0u;
    st.objective = -3.0e38;
    st.stat = 0.0;
    st.radius = 0.0;
    state[s] = st;
}

// Per sample, before restarts after the first: a sample whose kept result
// already succeeded is final (the first success is kept) and sits out.
@compute @workgroup_size(64)
fn restart_begin(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let s = linear_id(gid, nwg);
    if s >= p.n {
        return;
    }
    state[s].running = select(1u, 0u, state[s].success != 0u);
}

// Per value: x starts at x0, or (random start) uniformly in the Linf eps-ball,
// clipped to [0, 1]. Clears scratch (MI-FGSM's momentum).
@compute @workgroup_size(64)
fn start(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= p.n * p.d {
        return;
    }
    scratch[i] = 0.0;
    var v = x0[i];
    if p.random_start != 0u {
        let u = rng_unit(philox2x32(p.key, vec2<u32>(p.offset * p.d + i, p.restart)).x);
        v = clamp(v + p.eps * (2.0 * u - 1.0), 0.0, 1.0);
    }
    x[i] = v;
}

// Per value, masked attacks: x = x0 outside the mask; inside, x0 or (random
// start) a uniform value in [0, 1], from the same counter as `start`.
@compute @workgroup_size(64)
fn start_masked(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= p.n * p.d {
        return;
    }
    scratch[i] = 0.0;
    var v = x0[i];
    if p.random_start != 0u && mask[i % p.d] != 0.0 {
        v = rng_unit(philox2x32(p.key, vec2<u32>(p.offset * p.d + i, p.restart)).x);
    }
    x[i] = v;
}

// Per value: standard normal noise into scratch, the direction of an L2 random start.
@compute @workgroup_size(64)
fn start_l2_noise(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= p.n * p.d {
        return;
    }
    scratch[i] = rng_normal2(philox2x32(p.key, vec2<u32>(p.offset * p.d + i, p.restart))).x;
}

// Per sample: the L2 start radius eps * u^(1/D) (uniform in the ball) and the
// noise norm, kept in stat.
@compute @workgroup_size(64)
fn start_l2_norm(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let s = linear_id(gid, nwg);
    if s >= p.n {
        return;
    }
    var sum = 0.0;
    for (var j = 0u; j < p.d; j++) {
        let z = scratch[s * p.d + j];
        sum += z * z;
    }
    let u = rng_unit(philox2x32(p.key ^ 0x5bd1e995u, vec2<u32>(p.offset + s, p.restart)).x);
    state[s].stat = sqrt(sum);
    state[s].radius = p.eps * pow(u, 1.0 / f32(p.d));
}

// Per value: x = clip01(x0 + radius * z / ||z||), then clears scratch.
@compute @workgroup_size(64)
fn start_l2_apply(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= p.n * p.d {
        return;
    }
    let s = i / p.d;
    let scale = state[s].radius / max(state[s].stat, 1e-30);
    x[i] = clamp(x0[i] + scratch[i] * scale, 0.0, 1.0);
    scratch[i] = 0.0;
}

// Per sample, after the forward pass of a step: with early stopping, a sample
// that already succeeds stops here, before its update; the others count a step.
@compute @workgroup_size(64)
fn check(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let s = linear_id(gid, nwg);
    if s >= p.n || state[s].running == 0u {
        return;
    }
    if p.early_stop != 0u && succeeded(s) {
        state[s].running = 0u;
        return;
    }
    state[s].steps += 1u;
}

// Per sample: the gradient statistic a step divides by: mean(|g|) for
// MI-FGSM, ||g||_2 for L2 steps.
@compute @workgroup_size(64)
fn grad_l1_mean(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let s = linear_id(gid, nwg);
    if s >= p.n {
        return;
    }
    var sum = 0.0;
    for (var j = 0u; j < p.d; j++) {
        sum += abs(grad[s * p.d + j]);
    }
    state[s].stat = sum / f32(p.d);
}

@compute @workgroup_size(64)
fn grad_l2_norm(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let s = linear_id(gid, nwg);
    if s >= p.n {
        return;
    }
    var sum = 0.0;
    for (var j = 0u; j < p.d; j++) {
        let g = grad[s * p.d + j];
        sum += g * g;
    }
    state[s].stat = sqrt(sum);
}

// Per value: the signed step, projection onto the Linf ball, clip to [0, 1].
@compute @workgroup_size(64)
fn step_linf(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= p.n * p.d || state[i / p.d].running == 0u {
        return;
    }
    let v = x[i] + p.alpha * sign(grad[i]);
    x[i] = clamp(clamp(v, x0[i] - p.eps, x0[i] + p.eps), 0.0, 1.0);
}

// Per value: MI-FGSM's momentum step (Dong et al. 2018), then as step_linf.
@compute @workgroup_size(64)
fn step_momentum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= p.n * p.d || state[i / p.d].running == 0u {
        return;
    }
    // A zero gradient (mean 0) leaves the momentum as it is.
    let m = p.mu * scratch[i] + grad[i] / max(state[i / p.d].stat, 1e-30);
    scratch[i] = m;
    let v = x[i] + p.alpha * sign(m);
    x[i] = clamp(clamp(v, x0[i] - p.eps, x0[i] + p.eps), 0.0, 1.0);
}

// Per value: the masked signed step; values outside the mask are rewritten
// from x0, never computed.
@compute @workgroup_size(64)
fn step_masked(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= p.n * p.d || state[i / p.d].running == 0u {
        return;
    }
    if mask[i % p.d] == 0.0 {
        x[i] = x0[i];
        return;
    }
    x[i] = clamp(x[i] + p.alpha * sign(grad[i]), 0.0, 1.0);
}

// Per value: the normalised L2 step (projection follows in l2_project_*).
@compute @workgroup_size(64)
fn step_l2(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= p.n * p.d || state[i / p.d].running == 0u {
        return;
    }
    x[i] = x[i] + p.alpha * grad[i] / max(state[i / p.d].stat, 1e-30);
}

// Per sample: ||x - x0||_2 into stat.
@compute @workgroup_size(64)
fn l2_delta_norm(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let s = linear_id(gid, nwg);
    if s >= p.n || state[s].running == 0u {
        return;
    }
    var sum = 0.0;
    for (var j = 0u; j < p.d; j++) {
        let delta = x[s * p.d + j] - x0[s * p.d + j];
        sum += delta * delta;
    }
    state[s].stat = sqrt(sum);
}

// Per value: rescale delta onto the L2 ball when outside it, clip to [0, 1].
@compute @workgroup_size(64)
fn l2_project(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= p.n * p.d || state[i / p.d].running == 0u {
        return;
    }
    let norm = state[i / p.d].stat;
    var delta = x[i] - x0[i];
    if norm > p.eps {
        delta *= p.eps / norm;
    }
    x[i] = clamp(x0[i] + delta, 0.0, 1.0);
}

// Per sample, after a forward pass of the restart's final images: keep this
// restart's result if none has succeeded yet and it succeeds or has a higher
// objective than what is kept. Copies the sample's values itself.
@compute @workgroup_size(64)
fn keep_best(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let s = linear_id(gid, nwg);
    if s >= p.n || state[s].success != 0u {
        return;
    }
    let win = succeeded(s);
    let objective = p.sign * loss[s];
    if win || objective > state[s].objective {
        state[s].success = select(0u, 1u, win);
        state[s].objective = objective;
        state[s].pred = pred[s];
        for (var j = 0u; j < p.d; j++) {
            best_x[s * p.d + j] = x[s * p.d + j];
        }
    }
}
