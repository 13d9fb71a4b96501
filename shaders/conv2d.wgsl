// 2-D convolution: forward, gradients to weight and bias, and the weight
// flip of one way to compute the gradient to the input.
//
// Layout (PyTorch): x [N, Ci, H, W], w [Co, Ci, K, K], b [Co], y [N, Co, Ho, Wo],
// zero padding P, stride S, Ho = (H + 2P - K) / S + 1 (floor), likewise Wo.
//
//   y[n,co,oh,ow]  = b[co] + sum_{ci,kh,kw} w[co,ci,kh,kw] * x[n,ci,oh*S-P+kh,ow*S-P+kw]
//                    (then max(y, 0) when a ReLU follows, `relu` = 1)
//   gw[co,ci,kh,kw]= sum_{n,oh,ow} gy[n,co,oh,ow] * x[n,ci,oh*S-P+kh,ow*S-P+kw]
//   gb[co]         = sum_{n,oh,ow} gy[n,co,oh,ow]
//
// The gradient to the input has two formulations (src/nn/ops.rs times
// both per shape): a matrix product and a gather (col2im.wgsl), or, for
// stride 1, a convolution of gy padded by K-1-P with the flipped,
// transposed weights wt[ci,co,kh,kw] = w[co,ci,K-1-kh,K-1-kw]
// (`flip_weights`), run by `forward`.
//
// Every output is written by exactly one invocation, which sums its own terms
// (a gather): no atomics, so results are deterministic on every backend.
// Register blocking: an invocation keeps a tile of outputs in registers (8
// channels x 4 positions in `forward`, 4 channels x 4 taps in
// `backward_weight`), so each value loaded feeds several multiply-adds. No
// workgroup memory: on CPU-like devices its barriers cost more than the
// loads it saves (`conv2d_tiled.wgsl` is the variant that uses it).
//
// The weight gradient is split over `splits` consecutive chunks of the batch
// when Co x taps alone would give too few invocations to fill the device:
// each chunk writes its partial sums `[splits, Co, Ci*K*K]` and
// `sum_splits` adds them in chunk order, so the result stays deterministic.
//
// `forward` needs an unpadded convolution: for P > 0 the host first copies
// x into a zero-bordered buffer (`pad_input`) and convolves that with P = 0.
//
// Bindings: 0 params (uniform); 1 x; 2 w; 3 b; 4 y; 5 gy; 7 gw (or the
// partial sums); 8 gb; 9 partial sums (read); 10 wt; 11 padded x.
// Dispatch: 64-wide workgroups, linear index gid.x + gid.y * num_workgroups.x * 64;
// `forward` and `forward_narrow` one workgroup per channel block and 64
// position tiles, block index wid.x + wid.y * num_workgroups.x.

struct Params {
    batch: u32,
    in_c: u32,
    in_h: u32,
    in_w: u32,
    out_c: u32,
    out_h: u32,
    out_w: u32,
    k: u32,
    stride: u32,
    pad: u32,
    has_bias: u32,
    splits: u32,
    relu: u32,     // forward: 1 stores max(y, 0), the ReLU after it fused in
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read> gy: array<f32>;
@group(0) @binding(7) var<storage, read_write> gw: array<f32>;
@group(0) @binding(8) var<storage, read_write> gb: array<f32>;
@group(0) @binding(9) var<storage, read> partial: array<f32>;
@group(0) @binding(10) var<storage, read_write> wt: array<f32>;
@group(0) @binding(11) var<storage, read_write> padded: array<f32>;

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 64u;
}

// Value of x at (n, c, row, col) with zero padding outside the image.
fn x_at(n: u32, c: u32, row: i32, col: i32) -> f32 {
    if row < 0 || col < 0 || row >= i32(p.in_h) || col >= i32(p.in_w) {
        return 0.0;
    }
    return x[((n * p.in_c + c) * p.in_h + u32(row)) * p.in_w + u32(col)];
}

// Output offsets of 4 consecutive positions q0..q0+3 of an output plane
// (q = oh * Wo + ow, clamped to the plane) as input offsets
// oh * S * W + ow * S: the tap (kh, kw) of position q reads x at
// kh * W + kw + offset(q) within its input plane.
fn plane_offsets(q0: u32) -> vec4<u32> {
    let lastq = p.out_h * p.out_w - 1u;
    var off: vec4<u32>;
    for (var j = 0u; j < 4u; j++) {
        let q = min(q0 + j, lastq);
        off[j] = (q / p.out_w) * p.stride * p.in_w + (q % p.out_w) * p.stride;
    }
    return off;
}

// Stores y at channel oc, positions q0..q0+3 of sample n (those inside the
// plane), adding the bias, then with p.relu the ReLU max(y, 0).
fn store_positions(n: u32, oc: u32, q0: u32, v: vec4<f32>) {
    if oc >= p.out_c {
        return;
    }
    var bias = 0.0;
    if p.has_bias != 0u {
        bias = b[oc];
    }
    let plane = p.out_h * p.out_w;
    let base = (n * p.out_c + oc) * plane;
    var out = v + bias;
    if p.relu != 0u {
        out = max(out, vec4<f32>(0.0));
    }
    for (var j = 0u; j < 4u; j++) {
        if q0 + j < plane {
            y[base + q0 + j] = out[j];
        }
    }
}

// Forward without padding (the host pads the input first, `pad_input`).
// One workgroup: one block of 8 output channels, taken from the workgroup
// id so that every weight load is the same for all invocations (a scalar
// load, not a gather, on SIMD devices); invocation t: 4 consecutive
// positions of one output plane. Each input value loaded feeds 8
// multiply-adds, each weight 4.
@compute @workgroup_size(64)
fn forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let tiles_q = (p.out_h * p.out_w + 3u) / 4u;
    let tiles_c = (p.out_c + 7u) / 8u;
    let block = wid.x + wid.y * nwg.x;
    let co0 = (block % tiles_c) * 8u;
    let id = (block / tiles_c) * 64u + t;
    if id >= p.batch * tiles_q {
        return;
    }
    let q0 = (id % tiles_q) * 4u;
    let n = id / tiles_q;
    let off = plane_offsets(q0);

    // Channels past the end repeat the last one; their results are not stored.
    let last = p.out_c - 1u;
    let kk = p.k * p.k;
    let wstride = p.in_c * kk;
    var wb: array<u32, 8>;
    for (var c = 0u; c < 8u; c++) {
        wb[c] = min(co0 + c, last) * wstride;
    }
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var acc4 = vec4<f32>(0.0);
    var acc5 = vec4<f32>(0.0);
    var acc6 = vec4<f32>(0.0);
    var acc7 = vec4<f32>(0.0);
    let hw = p.in_h * p.in_w;
    for (var ci = 0u; ci < p.in_c; ci++) {
        let cbase = (n * p.in_c + ci) * hw;
        for (var kh = 0u; kh < p.k; kh++) {
            let rbase = cbase + kh * p.in_w;
            for (var kw = 0u; kw < p.k; kw++) {
                let xi = rbase + kw;
                let xv = vec4<f32>(x[xi + off.x], x[xi + off.y], x[xi + off.z], x[xi + off.w]);
                let wo = ci * kk + kh * p.k + kw;
                acc0 += w[wb[0] + wo] * xv;
                acc1 += w[wb[1] + wo] * xv;
                acc2 += w[wb[2] + wo] * xv;
                acc3 += w[wb[3] + wo] * xv;
                acc4 += w[wb[4] + wo] * xv;
                acc5 += w[wb[5] + wo] * xv;
                acc6 += w[wb[6] + wo] * xv;
                acc7 += w[wb[7] + wo] * xv;
            }
        }
    }
    store_positions(n, co0, q0, acc0);
    store_positions(n, co0 + 1u, q0, acc1);
    store_positions(n, co0 + 2u, q0, acc2);
    store_positions(n, co0 + 3u, q0, acc3);
    store_positions(n, co0 + 4u, q0, acc4);
    store_positions(n, co0 + 5u, q0, acc5);
    store_positions(n, co0 + 6u, q0, acc6);
    store_positions(n, co0 + 7u, q0, acc7);
}

// As `forward` with blocks of 2 output channels, for layers with fewer than 8.
@compute @workgroup_size(64)
fn forward_narrow(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let tiles_q = (p.out_h * p.out_w + 3u) / 4u;
    let tiles_c = (p.out_c + 1u) / 2u;
    let block = wid.x + wid.y * nwg.x;
    let co0 = (block % tiles_c) * 2u;
    let id = (block / tiles_c) * 64u + t;
    if id >= p.batch * tiles_q {
        return;
    }
    let q0 = (id % tiles_q) * 4u;
    let n = id / tiles_q;
    let off = plane_offsets(q0);

    let kk = p.k * p.k;
    let wstride = p.in_c * kk;
    let w0 = co0 * wstride;
    let w1 = min(co0 + 1u, p.out_c - 1u) * wstride;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    let hw = p.in_h * p.in_w;
    for (var ci = 0u; ci < p.in_c; ci++) {
        let cbase = (n * p.in_c + ci) * hw;
        for (var kh = 0u; kh < p.k; kh++) {
            let rbase = cbase + kh * p.in_w;
            for (var kw = 0u; kw < p.k; kw++) {
                let xi = rbase + kw;
                let xv = vec4<f32>(x[xi + off.x], x[xi + off.y], x[xi + off.z], x[xi + off.w]);
                let wo = ci * kk + kh * p.k + kw;
                acc0 += w[w0 + wo] * xv;
                acc1 += w[w1 + wo] * xv;
            }
        }
    }
    store_positions(n, co0, q0, acc0);
    store_positions(n, co0 + 1u, q0, acc1);
}

// One invocation per value of the padded input [N, Ci, H + 2P, W + 2P]:
// x inside, zero in the border.
@compute @workgroup_size(64)
fn pad_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let ph = p.in_h + 2u * p.pad;
    let pw = p.in_w + 2u * p.pad;
    let i = linear_id(gid, nwg);
    if i >= p.batch * p.in_c * ph * pw {
        return;
    }
    let col = i32(i % pw) - i32(p.pad);
    let row = i32((i / pw) % ph) - i32(p.pad);
    let plane = i / (pw * ph);
    var v = 0.0;
    if row >= 0 && col >= 0 && row < i32(p.in_h) && col < i32(p.in_w) {
        v = x[(plane * p.in_h + u32(row)) * p.in_w + u32(col)];
    }
    padded[i] = v;
}

// One invocation: output channels co0..co0+3 x four consecutive taps r0..r0+3,
// where a tap r indexes (ci, kh, kw) in weight order. Sums over the batch and
// every output position.
@compute @workgroup_size(64)
fn backward_weight(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let kk = p.k * p.k;
    let taps = p.in_c * kk;
    let tiles_r = (taps + 3u) / 4u;
    let tiles_c = (p.out_c + 3u) / 4u;
    var id = linear_id(gid, nwg);
    if id >= tiles_c * tiles_r * p.splits {
        return;
    }
    let r0 = (id % tiles_r) * 4u;
    id /= tiles_r;
    let co0 = (id % tiles_c) * 4u;
    let split = id / tiles_c;
    let chunk = (p.batch + p.splits - 1u) / p.splits;
    let n_begin = split * chunk;
    let n_end = min(n_begin + chunk, p.batch);

    // Decompose the four taps once; taps past the end repeat the last one.
    var tci: array<u32, 4>;
    var tkh: array<i32, 4>;
    var tkw: array<i32, 4>;
    for (var j = 0u; j < 4u; j++) {
        let r = min(r0 + j, taps - 1u);
        tci[j] = r / kk;
        tkh[j] = i32((r % kk) / p.k) - i32(p.pad);
        tkw[j] = i32(r % p.k) - i32(p.pad);
    }
    let lastc = p.out_c - 1u;
    let co = vec4<u32>(co0, min(co0 + 1u, lastc), min(co0 + 2u, lastc), min(co0 + 3u, lastc));
    let plane = p.out_h * p.out_w;
    let s = i32(p.stride);

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var n = n_begin; n < n_end; n++) {
        let gbase = n * p.out_c * plane;
        for (var oh = 0u; oh < p.out_h; oh++) {
            for (var ow = 0u; ow < p.out_w; ow++) {
                let o = gbase + oh * p.out_w + ow;
                let g = vec4<f32>(gy[o + co.x * plane], gy[o + co.y * plane], gy[o + co.z * plane], gy[o + co.w * plane]);
                let row = i32(oh) * s;
                let col = i32(ow) * s;
                let xv = vec4<f32>(
                    x_at(n, tci[0], row + tkh[0], col + tkw[0]),
                    x_at(n, tci[1], row + tkh[1], col + tkw[1]),
                    x_at(n, tci[2], row + tkh[2], col + tkw[2]),
                    x_at(n, tci[3], row + tkh[3], col + tkw[3]),
                );
                acc0 += g.x * xv;
                acc1 += g.y * xv;
                acc2 += g.z * xv;
                acc3 += g.w * xv;
            }
        }
    }

    var accs = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var c = 0u; c < 4u; c++) {
        let oc = co0 + c;
        if oc >= p.out_c {
            break;
        }
        for (var j = 0u; j < 4u; j++) {
            if r0 + j < taps {
                gw[(split * p.out_c + oc) * taps + r0 + j] = accs[c][j];
            }
        }
    }
}

// One invocation per weight: the sum of the per-chunk partial sums, in chunk order.
@compute @workgroup_size(64)
fn sum_splits(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let len = p.out_c * p.in_c * p.k * p.k;
    let i = linear_id(gid, nwg);
    if i >= len {
        return;
    }
    var acc = 0.0;
    for (var s = 0u; s < p.splits; s++) {
        acc += partial[s * len + i];
    }
    gw[i] = acc;
}

// One invocation per weight: wt[ci,co,K-1-kh,K-1-kw] = w[co,ci,kh,kw].
@compute @workgroup_size(64)
fn flip_weights(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let kk = p.k * p.k;
    let i = linear_id(gid, nwg);
    if i >= p.out_c * p.in_c * kk {
        return;
    }
    let kw = i % p.k;
    let kh = (i / p.k) % p.k;
    let ci = (i / kk) % p.in_c;
    let co = i / (kk * p.in_c);
    wt[((ci * p.out_c + co) * p.k + (p.k - 1u - kh)) * p.k + (p.k - 1u - kw)] = w[i];
}

// One invocation per output channel: the sum of its gradient over the batch and positions.
@compute @workgroup_size(64)
fn backward_bias(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let co = linear_id(gid, nwg);
    if co >= p.out_c {
        return;
    }
    let plane = p.out_h * p.out_w;
    var acc = 0.0;
    for (var n = 0u; n < p.batch; n++) {
        let base = (n * p.out_c + co) * plane;
        for (var i = 0u; i < plane; i++) {
            acc += gy[base + i];
        }
    }
    gb[co] = acc;
}
