// Fully connected layer: forward, gradient to the input, gradients to weight and bias.
//
// Layout (PyTorch): x [N, I], w [O, I], b [O], y [N, O].
//
//   y[n,o]  = b[o] + sum_i x[n,i] * w[o,i]
//   gx[n,i] = sum_o gy[n,o] * w[o,i]
//   gw[o,i] = sum_n gy[n,o] * x[n,i]
//   gb[o]   = sum_n gy[n,o]
//
// Each output is written by one invocation summing its own terms (no atomics).
// Register blocking: an invocation computes a 4 x 4 tile, so every loaded
// value feeds four multiply-adds.
//
// Bindings: 0 params (uniform); 1 x; 2 w; 3 b; 4 y; 5 gy; 6 gx; 7 gw; 8 gb.
// Dispatch: 64-wide workgroups, linear index gid.x + gid.y * num_workgroups.x * 64.

struct Params {
    batch: u32,
    in_f: u32,
    out_f: u32,
    has_bias: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read> gy: array<f32>;
@group(0) @binding(6) var<storage, read_write> gx: array<f32>;
@group(0) @binding(7) var<storage, read_write> gw: array<f32>;
@group(0) @binding(8) var<storage, read_write> gb: array<f32>;

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 64u;
}

// Four consecutive indices starting at i0, the ones past `count` clamped to the last.
fn quad(i0: u32, count: u32) -> vec4<u32> {
    let last = count - 1u;
    return vec4<u32>(i0, min(i0 + 1u, last), min(i0 + 2u, last), min(i0 + 3u, last));
}

// One invocation: samples n0..n0+3 x outputs o0..o0+3.
@compute @workgroup_size(64)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let tiles_o = (p.out_f + 3u) / 4u;
    let id = linear_id(gid, nwg);
    if id >= tiles_o * ((p.batch + 3u) / 4u) {
        return;
    }
    let o0 = (id % tiles_o) * 4u;
    let n0 = (id / tiles_o) * 4u;
    let o = quad(o0, p.out_f) * p.in_f;
    let n = quad(n0, p.batch) * p.in_f;

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var i = 0u; i < p.in_f; i++) {
        let wv = vec4<f32>(w[o.x + i], w[o.y + i], w[o.z + i], w[o.w + i]);
        acc0 += x[n.x + i] * wv;
        acc1 += x[n.y + i] * wv;
        acc2 += x[n.z + i] * wv;
        acc3 += x[n.w + i] * wv;
    }

    var accs = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var r = 0u; r < 4u; r++) {
        if n0 + r >= p.batch {
            break;
        }
        for (var c = 0u; c < 4u; c++) {
            let oc = o0 + c;
            if oc < p.out_f {
                var bias = 0.0;
                if p.has_bias != 0u {
                    bias = b[oc];
                }
                y[(n0 + r) * p.out_f + oc] = accs[r][c] + bias;
            }
        }
    }
}

// One invocation: samples n0..n0+3 x inputs i0..i0+3.
@compute @workgroup_size(64)
fn backward_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let tiles_i = (p.in_f + 3u) / 4u;
    let id = linear_id(gid, nwg);
    if id >= tiles_i * ((p.batch + 3u) / 4u) {
        return;
    }
    let i0 = (id % tiles_i) * 4u;
    let n0 = (id / tiles_i) * 4u;
    let i = quad(i0, p.in_f);
    let n = quad(n0, p.batch) * p.out_f;

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var o = 0u; o < p.out_f; o++) {
        let row = o * p.in_f;
        let wv = vec4<f32>(w[row + i.x], w[row + i.y], w[row + i.z], w[row + i.w]);
        acc0 += gy[n.x + o] * wv;
        acc1 += gy[n.y + o] * wv;
        acc2 += gy[n.z + o] * wv;
        acc3 += gy[n.w + o] * wv;
    }

    var accs = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var r = 0u; r < 4u; r++) {
        if n0 + r >= p.batch {
            break;
        }
        for (var c = 0u; c < 4u; c++) {
            if i0 + c < p.in_f {
                gx[(n0 + r) * p.in_f + i0 + c] = accs[r][c];
            }
        }
    }
}

// One invocation: outputs o0..o0+3 x inputs i0..i0+3, summed over the batch.
@compute @workgroup_size(64)
fn backward_weight(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let tiles_i = (p.in_f + 3u) / 4u;
    let id = linear_id(gid, nwg);
    if id >= tiles_i * ((p.out_f + 3u) / 4u) {
        return;
    }
    let i0 = (id % tiles_i) * 4u;
    let o0 = (id / tiles_i) * 4u;
    let i = quad(i0, p.in_f);
    let o = quad(o0, p.out_f);

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var n = 0u; n < p.batch; n++) {
        let xr = n * p.in_f;
        let gr = n * p.out_f;
        let xv = vec4<f32>(x[xr + i.x], x[xr + i.y], x[xr + i.z], x[xr + i.w]);
        acc0 += gy[gr + o.x] * xv;
        acc1 += gy[gr + o.y] * xv;
        acc2 += gy[gr + o.z] * xv;
        acc3 += gy[gr + o.w] * xv;
    }

    var accs = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var r = 0u; r < 4u; r++) {
        if o0 + r >= p.out_f {
            break;
        }
        for (var c = 0u; c < 4u; c++) {
            if i0 + c < p.in_f {
                gw[(o0 + r) * p.in_f + i0 + c] = accs[r][c];
            }
        }
    }
}

// One invocation per output: the sum of its gradient over the batch.
@compute @workgroup_size(64)
fn backward_bias(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = linear_id(gid, nwg);
    if o >= p.out_f {
        return;
    }
    var acc = 0.0;
    for (var n = 0u; n < p.batch; n++) {
        acc += gy[n * p.out_f + o];
    }
    gb[o] = acc;
}
