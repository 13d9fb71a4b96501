// Attribution kernels: the inputs each saliency method feeds the network, the
// seed of the class-score gradient, and the reductions that turn the results
// of many copies of an image into one map. The network's forward and backward
// passes run between these kernels; this file never sees the network.
//
// Work is laid out in rows. Image i of the group has `copies` rows
// r = i * copies + j, j = 0..copies: the noisy copies of SmoothGrad, the path
// points of Integrated Gradients, the occluder positions of occlusion. The
// plan holds `batch` rows; one chunk runs rows row0 .. row0 + rows of the
// group, at plan row r - row0. Rows of one image are run in order of j.
//
// Layout: x, acc, out [images, D] (D = C*H*W values per image, NCHW);
// input, grad_input [batch, D] (the plan's input and its gradient);
// logits, grad_logits [batch, K]; explained (u32 class), score [images];
// drops [images, copies].
//
// With b the reference value (baseline or occluder fill) and z ~ N(0, 1):
//   input_image:    input_r = x_i
//   input_noise:    input_r = x_i + sigma * z,  z from Philox (rng.wgsl) with the counter
//                   ((offset + i) * D + e, j): a value's noise does not depend on the split
//   input_path:     input_r = b + alpha_j * (x_i - b),  alpha_j = (j + 1/2) / copies
//   input_occlude:  input_r = b inside window j (all channels), x_i elsewhere
//   seed_score:     grad_logits[r, k] = [k == class_i]   (so backward gives d logit / d input)
//   accumulate:     acc_i = g_r at j = 0, then acc_i + (g_r - acc_i) / (j + 1): the running
//                   mean over j, which equals g exactly when every g_r equals g
//   score_drop:     drops[i, j] = score_i - logits[r, class_i]
//   finish_mean:        out = acc
//   finish_times_input: out = acc * x
//   finish_times_delta: out = acc * (x - b)
//   finish_occlusion:   out[c, y, x] = mean of drops[i, p] over the windows p covering (y, x)
//
// Occluder windows: `window` x `window` squares, top-left corners at
// min(p * stride, H - window) for p = 0..ny along y (and likewise along x),
// so the last window touches the border and every pixel is covered; window
// j = py * nx + px.
//
// Limitation: counters and indices are u32, so the noise repeats (and
// nothing else breaks) once (offset + images) * D passes 2^32 values, e.g.
// beyond 28,000 images of 224 x 224 x 3 in one call.
//
// Bindings: 0 params (uniform); 1 x; 2 input; 3 grad_input; 4 logits;
// 5 grad_logits; 6 explained (class per image); 7 score; 8 acc; 9 drops; 10 out.
// Dispatch: 64-wide workgroups, linear index gid.x + gid.y * num_workgroups.x * 64;
// per chunk value (batch * D), per chunk logit (batch * K), per chunk row
// (batch) or per group value (images * D), as named.

// #include rng

struct Params {
    images: u32,     // images in the group (the rest of the buffers is padding)
    d: u32,          // values per image
    copies: u32,     // rows per image
    row0: u32,       // first row of this chunk, within the group
    rows: u32,       // real rows in this chunk; plan rows beyond are padding
    batch: u32,      // rows the plan holds
    classes: u32,    // K
    key: u32,        // Philox key from the seed
    offset: u32,     // global index of the group's first image, for the random counters
    channels: u32,
    height: u32,
    width: u32,
    window: u32,     // occluder side
    stride: u32,     // occluder step
    nx: u32,         // occluder positions along x
    ny: u32,         // occluder positions along y
    sigma: f32,      // SmoothGrad noise standard deviation
    reference: f32,  // baseline (Integrated Gradients) or fill (occlusion)
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> input: array<f32>;
@group(0) @binding(3) var<storage, read> grad_input: array<f32>;
@group(0) @binding(4) var<storage, read> logits: array<f32>;
@group(0) @binding(5) var<storage, read_write> grad_logits: array<f32>;
@group(0) @binding(6) var<storage, read> explained: array<u32>;
@group(0) @binding(7) var<storage, read> score: array<f32>;
@group(0) @binding(8) var<storage, read_write> acc: array<f32>;
@group(0) @binding(9) var<storage, read_write> drops: array<f32>;
@group(0) @binding(10) var<storage, read_write> out: array<f32>;

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 64u;
}

// Top-left corner (y, x) of occluder window j.
fn window_corner(j: u32) -> vec2<u32> {
    let py = j / p.nx;
    let px = j % p.nx;
    return vec2<u32>(min(py * p.stride, p.height - p.window), min(px * p.stride, p.width - p.window));
}

// Whether pixel e of an image (any channel) lies in window j.
fn in_window(e: u32, j: u32) -> bool {
    let pixel = e % (p.height * p.width);
    let y = pixel / p.width;
    let xx = pixel % p.width;
    let c = window_corner(j);
    return y >= c.x && y < c.x + p.window && xx >= c.y && xx < c.y + p.window;
}

// Plan value t of this chunk as (row within the group, value e, 1), or with
// 0 last for padding rows, which get zeros.
fn chunk_value(t: u32) -> vec3<u32> {
    let local = t / p.d;
    let e = t % p.d;
    return vec3<u32>(p.row0 + local, e, select(0u, 1u, local < p.rows));
}

@compute @workgroup_size(64)
fn input_image(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    if t >= p.batch * p.d {
        return;
    }
    let v = chunk_value(t);
    if v.z == 0u {
        input[t] = 0.0;
        return;
    }
    input[t] = x[(v.x / p.copies) * p.d + v.y];
}

@compute @workgroup_size(64)
fn input_noise(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    if t >= p.batch * p.d {
        return;
    }
    let v = chunk_value(t);
    if v.z == 0u {
        input[t] = 0.0;
        return;
    }
    let i = v.x / p.copies;
    let j = v.x % p.copies;
    let z = rng_normal2(philox2x32(p.key, vec2<u32>((p.offset + i) * p.d + v.y, j))).x;
    input[t] = x[i * p.d + v.y] + p.sigma * z;
}

@compute @workgroup_size(64)
fn input_path(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    if t >= p.batch * p.d {
        return;
    }
    let v = chunk_value(t);
    if v.z == 0u {
        input[t] = 0.0;
        return;
    }
    let i = v.x / p.copies;
    let j = v.x % p.copies;
    let alpha = (f32(j) + 0.5) / f32(p.copies);
    input[t] = p.reference + alpha * (x[i * p.d + v.y] - p.reference);
}

@compute @workgroup_size(64)
fn input_occlude(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    if t >= p.batch * p.d {
        return;
    }
    let v = chunk_value(t);
    if v.z == 0u {
        input[t] = 0.0;
        return;
    }
    let i = v.x / p.copies;
    let j = v.x % p.copies;
    input[t] = select(x[i * p.d + v.y], p.reference, in_window(v.y, j));
}

// Per chunk logit: the one-hot seed of the explained class; zero on padding rows.
@compute @workgroup_size(64)
fn seed_score(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    if t >= p.batch * p.classes {
        return;
    }
    let local = t / p.classes;
    let k = t % p.classes;
    var g = 0.0;
    if local < p.rows {
        let i = (p.row0 + local) / p.copies;
        g = select(0.0, 1.0, k == explained[i]);
    }
    grad_logits[t] = g;
}

// Per group value: folds this chunk's gradients of image i into its running mean.
@compute @workgroup_size(64)
fn accumulate(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    if t >= p.images * p.d {
        return;
    }
    let i = t / p.d;
    let e = t % p.d;
    let first = max(p.row0, i * p.copies);
    let last = min(p.row0 + p.rows, (i + 1u) * p.copies);
    var a = acc[t];
    for (var r = first; r < last; r++) {
        let g = grad_input[(r - p.row0) * p.d + e];
        let j = r - i * p.copies;
        if j == 0u {
            a = g;
        } else {
            a = a + (g - a) / f32(j + 1u);
        }
    }
    acc[t] = a;
}

// Per chunk row: the drop of the explained class's logit under occluder j.
@compute @workgroup_size(64)
fn score_drop(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let local = linear_id(gid, nwg);
    if local >= p.rows {
        return;
    }
    let r = p.row0 + local;
    let i = r / p.copies;
    drops[r] = score[i] - logits[local * p.classes + explained[i]];
}

@compute @workgroup_size(64)
fn finish_mean(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    if t < p.images * p.d {
        out[t] = acc[t];
    }
}

@compute @workgroup_size(64)
fn finish_times_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    if t < p.images * p.d {
        out[t] = acc[t] * x[t];
    }
}

@compute @workgroup_size(64)
fn finish_times_delta(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    if t < p.images * p.d {
        out[t] = acc[t] * (x[t] - p.reference);
    }
}

@compute @workgroup_size(64)
fn finish_occlusion(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    if t >= p.images * p.d {
        return;
    }
    let i = t / p.d;
    let e = t % p.d;
    var sum = 0.0;
    var count = 0u;
    for (var j = 0u; j < p.copies; j++) {
        if in_window(e, j) {
            sum += drops[i * p.copies + j];
            count += 1u;
        }
    }
    out[t] = sum / f32(max(count, 1u));
}
