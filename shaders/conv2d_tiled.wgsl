// 2-D convolution, workgroup-memory variant: forward and weight gradient.
//
// Same layout, formulas and bindings as conv2d.wgsl (read its header); the
// results agree to float rounding. The convolution is treated as a matrix
// product over im2col columns that are never stored:
//
//   forward          C[co, q] = sum_r W[co, r] * X[r, q]
//   backward_weight  C[co, r] = sum_q G[co, q] * X[r, q]
//
// with q = (n, oh, ow) a flattened output position, r = (ci, kh, kw) a weight
// tap, X[r, q] = x[n, ci, oh*S-P+kh, ow*S-P+kw] (zero outside the image) and
// G[co, q] = gy[n, co, oh, ow]. A workgroup of 64 invocations stages blocks
// of both operands in workgroup memory and computes one output block, each
// invocation a 4 x 4 tile of it. This pays off where workgroup memory is
// fast and barriers are cheap (discrete GPUs); conv2d.wgsl is faster on
// CPU-like devices. The weight gradient can be split over chunks of q like
// in conv2d.wgsl (partial sums `[splits, Co, taps]`, added by
// conv2d.wgsl's `sum_splits`).
//
// Bindings: 0 params (uniform); 1 x; 2 w; 3 b; 4 y; 5 gy; 7 gw (or partial sums).
// Dispatch: one 64-wide workgroup per output block, block index
// wid.x + wid.y * num_workgroups.x.

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

// Value of x at (n, c, row, col) with zero padding outside the image.
fn x_at(n: u32, c: u32, row: i32, col: i32) -> f32 {
    if row < 0 || col < 0 || row >= i32(p.in_h) || col >= i32(p.in_w) {
        return 0.0;
    }
    return x[((n * p.in_c + c) * p.in_h + u32(row)) * p.in_w + u32(col)];
}

// X[r, q] of the header: tap r of output position q, or 0 past either end.
fn im2col(r: u32, q: u32) -> f32 {
    let kk = p.k * p.k;
    let plane = p.out_h * p.out_w;
    if r >= p.in_c * kk || q >= p.batch * plane {
        return 0.0;
    }
    let n = q / plane;
    let oh = (q % plane) / p.out_w;
    let ow = q % p.out_w;
    let ci = r / kk;
    let kh = (r % kk) / p.k;
    let kw = r % p.k;
    let row = i32(oh * p.stride + kh) - i32(p.pad);
    let col = i32(ow * p.stride + kw) - i32(p.pad);
    return x_at(n, ci, row, col);
}

const DEPTH: u32 = 16u;

// Forward blocks: 16 output channels x 64 positions; invocation t computes
// channels 4 * (t / 16) .. + 3 at positions 4 * (t % 16) .. + 3.
const FWD_M: u32 = 16u;
const FWD_N: u32 = 64u;
var<workgroup> fwd_w: array<f32, 256>;   // [FWD_M][DEPTH]
var<workgroup> fwd_x: array<f32, 1024>;  // [DEPTH][FWD_N]

@compute @workgroup_size(64)
fn forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let taps = p.in_c * p.k * p.k;
    let positions = p.batch * p.out_h * p.out_w;
    let blocks_m = (p.out_c + FWD_M - 1u) / FWD_M;
    let blocks_n = (positions + FWD_N - 1u) / FWD_N;
    let block = wid.x + wid.y * nwg.x;
    // Whole workgroups leave together, so the barriers below stay uniform.
    if block >= blocks_m * blocks_n {
        return;
    }
    let bm = (block % blocks_m) * FWD_M;
    let bn = (block / blocks_m) * FWD_N;
    let tm = (t / 16u) * 4u;
    let tn = (t % 16u) * 4u;

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var r0 = 0u; r0 < taps; r0 += DEPTH) {
        // Weights: 4 values per invocation. Inputs: column t of the block, 16 taps.
        for (var e = 0u; e < 4u; e++) {
            let idx = t * 4u + e;
            let co = bm + idx / DEPTH;
            let r = r0 + idx % DEPTH;
            var v = 0.0;
            if co < p.out_c && r < taps {
                v = w[co * taps + r];
            }
            fwd_w[idx] = v;
        }
        for (var kr = 0u; kr < DEPTH; kr++) {
            fwd_x[kr * FWD_N + t] = im2col(r0 + kr, bn + t);
        }
        workgroupBarrier();
        for (var kr = 0u; kr < DEPTH; kr++) {
            let row = kr * FWD_N + tn;
            let xv = vec4<f32>(fwd_x[row], fwd_x[row + 1u], fwd_x[row + 2u], fwd_x[row + 3u]);
            acc0 += fwd_w[tm * DEPTH + kr] * xv;
            acc1 += fwd_w[(tm + 1u) * DEPTH + kr] * xv;
            acc2 += fwd_w[(tm + 2u) * DEPTH + kr] * xv;
            acc3 += fwd_w[(tm + 3u) * DEPTH + kr] * xv;
        }
        workgroupBarrier();
    }

    let plane = p.out_h * p.out_w;
    var accs = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var j = 0u; j < 4u; j++) {
        let q = bn + tn + j;
        if q >= positions {
            break;
        }
        let n = q / plane;
        let pos = q % plane;
        for (var i = 0u; i < 4u; i++) {
            let co = bm + tm + i;
            if co < p.out_c {
                var bias = 0.0;
                if p.has_bias != 0u {
                    bias = b[co];
                }
                var v = accs[i][j] + bias;
                if p.relu != 0u {
                    v = max(v, 0.0);
                }
                y[(n * p.out_c + co) * plane + pos] = v;
            }
        }
    }
}

// Weight-gradient blocks: 32 output channels x 32 taps over one chunk of
// positions; invocation t computes channels 4 * (t / 8) .. + 3 at taps
// 4 * (t % 8) .. + 3.
const BWD_TILE: u32 = 32u;
var<workgroup> bwd_g: array<f32, 512>;  // [BWD_TILE channels][DEPTH positions]
var<workgroup> bwd_x: array<f32, 512>;  // [DEPTH positions][BWD_TILE taps]

@compute @workgroup_size(64)
fn backward_weight(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let taps = p.in_c * p.k * p.k;
    let plane = p.out_h * p.out_w;
    let positions = p.batch * plane;
    let blocks_m = (p.out_c + BWD_TILE - 1u) / BWD_TILE;
    let blocks_n = (taps + BWD_TILE - 1u) / BWD_TILE;
    var block = wid.x + wid.y * nwg.x;
    if block >= blocks_m * blocks_n * p.splits {
        return;
    }
    let bm = (block % blocks_m) * BWD_TILE;
    block /= blocks_m;
    let bn = (block % blocks_n) * BWD_TILE;
    let split = block / blocks_n;
    let chunk = (positions + p.splits - 1u) / p.splits;
    let q_begin = split * chunk;
    let q_end = min(q_begin + chunk, positions);
    let tm = (t / 8u) * 4u;
    let tn = (t % 8u) * 4u;

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var q0 = q_begin; q0 < q_end; q0 += DEPTH) {
        for (var e = 0u; e < 8u; e++) {
            let idx = t * 8u + e;
            // Gradient block [channel][position].
            let co = bm + idx / DEPTH;
            let q = q0 + idx % DEPTH;
            var g = 0.0;
            if co < p.out_c && q < q_end {
                g = gy[((q / plane) * p.out_c + co) * plane + q % plane];
            }
            bwd_g[idx] = g;
            // Input block [position][tap].
            let qx = q0 + idx / BWD_TILE;
            var v = 0.0;
            if qx < q_end {
                v = im2col(bn + idx % BWD_TILE, qx);
            }
            bwd_x[idx] = v;
        }
        workgroupBarrier();
        for (var kq = 0u; kq < DEPTH; kq++) {
            let row = kq * BWD_TILE + tn;
            let xv = vec4<f32>(bwd_x[row], bwd_x[row + 1u], bwd_x[row + 2u], bwd_x[row + 3u]);
            acc0 += bwd_g[tm * DEPTH + kq] * xv;
            acc1 += bwd_g[(tm + 1u) * DEPTH + kq] * xv;
            acc2 += bwd_g[(tm + 2u) * DEPTH + kq] * xv;
            acc3 += bwd_g[(tm + 3u) * DEPTH + kq] * xv;
        }
        workgroupBarrier();
    }

    var accs = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var i = 0u; i < 4u; i++) {
        let co = bm + tm + i;
        if co >= p.out_c {
            break;
        }
        for (var j = 0u; j < 4u; j++) {
            let r = bn + tn + j;
            if r < taps {
                gw[(split * p.out_c + co) * taps + r] = accs[i][j];
            }
        }
    }
}
