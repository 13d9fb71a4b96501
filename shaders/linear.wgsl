// Fully connected layer as a strided matrix product, and its bias terms.
//
// Layout (PyTorch): x [N, I], w [O, I], b [O], y [N, O].
//
//   y[n,o]  = b[o] + sum_i x[n,i] * w[o,i]
//   gx[n,i] = sum_o gy[n,o] * w[o,i]
//   gw[o,i] = sum_n gy[n,o] * x[n,i]
//   gb[o]   = sum_n gy[n,o]
//
// The first three are one product C[m,n] = sum_k A[m,k] * B[k,n] (+ bias[n]),
// C row-major [M, N], with A and B read through strides, so the host reads
// the same buffers in whichever order each product needs:
//   forward         A = x  (m = sample, k = i)    B = w^T (k = i, n = o)
//   backward_input  A = gy (m = sample, k = o)    B = w   (k = o, n = i)
//   backward_weight A = gy^T (m = o, k = sample)  B = x   (k = sample, n = i)
// and the first half of a convolution's input gradient (see col2im.wgsl):
//   col             A = w^T  (m = tap, k = co)    B = gy  (k = co, n = sample, position)
//
// Each output is written by one invocation summing its own terms in order of
// k (no atomics). `gemm`: register blocking, an invocation computes an 8 x 4
// tile (rows shared by its workgroup) so that every loaded value feeds
// several multiply-adds, no workgroup memory. `gemm_tiled`: a workgroup stages 32 x 16 blocks of A and 16 x 32
// blocks of B in workgroup memory, then each invocation computes a 4 x 4
// tile of the 32 x 32 output block from there. The first wins on CPU-like
// devices, the second on discrete GPUs; the engine times both.
//
// Bindings: 0 params (uniform); 1 a; 2 b; 3 bias; 4 c; 5 gy; 6 gb.
// Dispatch: 64-wide workgroups; `gemm` one per 8 rows and 256 columns,
// `gemm_tiled` one per 32 x 32 output block (block index wid.x + wid.y *
// num_workgroups.x); `backward_bias` linear index gid.x + gid.y *
// num_workgroups.x * 64.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    has_bias: u32,
    a_ms: u32,   // A[m,k] = a[m * a_ms + k * a_ks]
    a_ks: u32,
    b_ks: u32,   // B[k,n] = b[k * b_ks + n * b_ns]
    b_ns: u32,
    // B may be a batch of [K, b_group] matrices stored one after another
    // (the convolution input gradient's output gradients, [N, Co, Ho, Wo]),
    // read as one [K, batch * b_group] operand starting at b_offset:
    // B[k,n] = b[b_offset + k * b_ks + n * b_ns + (n / b_group) * b_gs].
    // A plain matrix has b_group = u32 max, b_gs = b_offset = 0.
    b_group: u32,
    b_gs: u32,
    b_offset: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;
@group(0) @binding(5) var<storage, read> gy: array<f32>;
@group(0) @binding(6) var<storage, read_write> gb: array<f32>;

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 64u;
}

// Four consecutive indices starting at i0, the ones past `count` clamped to the last.
fn quad(i0: u32, count: u32) -> vec4<u32> {
    let last = count - 1u;
    return vec4<u32>(i0, min(i0 + 1u, last), min(i0 + 2u, last), min(i0 + 3u, last));
}

// Writes a 4 x 4 block of C at (m0, n0), adding the bias, skipping the part
// outside [M, N].
fn store_block(m0: u32, n0: u32, accs: array<vec4<f32>, 4>) {
    for (var r = 0u; r < 4u; r++) {
        if m0 + r >= p.m {
            break;
        }
        for (var j = 0u; j < 4u; j++) {
            let col = n0 + j;
            if col < p.n {
                var v = accs[r][j];
                if p.has_bias != 0u {
                    v += bias[col];
                }
                c[(m0 + r) * p.n + col] = v;
            }
        }
    }
}

// One workgroup: rows m0..m0+7 of C, taken from the workgroup id so that
// every load of A is the same for all invocations (a scalar load, not a
// gather, on SIMD devices); invocation t: 4 consecutive columns. Each value
// of B loaded feeds 8 multiply-adds, each value of A 4.
@compute @workgroup_size(64)
fn gemm(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let tiles_n = (p.n + 3u) / 4u;
    let groups_n = (tiles_n + 63u) / 64u;
    let block = wid.x + wid.y * nwg.x;
    let m0 = (block / groups_n) * 8u;
    let tile = (block % groups_n) * 64u + t;
    if m0 >= p.m || tile >= tiles_n {
        return;
    }
    let n0 = tile * 4u;
    let cols = quad(n0, p.n);
    let bn = p.b_offset + cols * p.b_ns + (cols / p.b_group) * p.b_gs;
    // Rows past the end repeat the last one; their results are not stored.
    var am: array<u32, 8>;
    for (var r = 0u; r < 8u; r++) {
        am[r] = min(m0 + r, p.m - 1u) * p.a_ms;
    }

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var acc4 = vec4<f32>(0.0);
    var acc5 = vec4<f32>(0.0);
    var acc6 = vec4<f32>(0.0);
    var acc7 = vec4<f32>(0.0);
    for (var k = 0u; k < p.k; k++) {
        let ak = k * p.a_ks;
        let bk = k * p.b_ks;
        let bv = vec4<f32>(b[bk + bn.x], b[bk + bn.y], b[bk + bn.z], b[bk + bn.w]);
        acc0 += a[am[0] + ak] * bv;
        acc1 += a[am[1] + ak] * bv;
        acc2 += a[am[2] + ak] * bv;
        acc3 += a[am[3] + ak] * bv;
        acc4 += a[am[4] + ak] * bv;
        acc5 += a[am[5] + ak] * bv;
        acc6 += a[am[6] + ak] * bv;
        acc7 += a[am[7] + ak] * bv;
    }
    store_block(m0, n0, array<vec4<f32>, 4>(acc0, acc1, acc2, acc3));
    store_block(m0 + 4u, n0, array<vec4<f32>, 4>(acc4, acc5, acc6, acc7));
}

const TILE: u32 = 32u;
const DEPTH: u32 = 16u;
var<workgroup> tile_a: array<f32, 512>; // [TILE rows][DEPTH]
var<workgroup> tile_b: array<f32, 512>; // [DEPTH][TILE columns]

// One workgroup: a 32 x 32 block of C; invocation t computes rows
// 4 * (t / 8) .. + 3 and columns 4 * (t % 8) .. + 3 of it.
@compute @workgroup_size(64)
fn gemm_tiled(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let blocks_n = (p.n + TILE - 1u) / TILE;
    let blocks_m = (p.m + TILE - 1u) / TILE;
    let block = wid.x + wid.y * nwg.x;
    // Whole workgroups leave together, so the barriers below stay uniform.
    if block >= blocks_n * blocks_m {
        return;
    }
    let bm = (block / blocks_n) * TILE;
    let bn = (block % blocks_n) * TILE;
    let tm = (t / 8u) * 4u;
    let tn = (t % 8u) * 4u;

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < p.k; k0 += DEPTH) {
        // Each invocation stages 8 values of each block; zeros past the edges.
        for (var e = 0u; e < 8u; e++) {
            let idx = t * 8u + e;
            let ra = idx / DEPTH;
            let ka = k0 + idx % DEPTH;
            var va = 0.0;
            if bm + ra < p.m && ka < p.k {
                va = a[(bm + ra) * p.a_ms + ka * p.a_ks];
            }
            tile_a[idx] = va;
            let kb = k0 + idx / TILE;
            let cb = bn + idx % TILE;
            var vb = 0.0;
            if kb < p.k && cb < p.n {
                vb = b[p.b_offset + kb * p.b_ks + cb * p.b_ns + (cb / p.b_group) * p.b_gs];
            }
            tile_b[idx] = vb;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < DEPTH; kk++) {
            let row = kk * TILE + tn;
            let bv = vec4<f32>(tile_b[row], tile_b[row + 1u], tile_b[row + 2u], tile_b[row + 3u]);
            acc0 += tile_a[tm * DEPTH + kk] * bv;
            acc1 += tile_a[(tm + 1u) * DEPTH + kk] * bv;
            acc2 += tile_a[(tm + 2u) * DEPTH + kk] * bv;
            acc3 += tile_a[(tm + 3u) * DEPTH + kk] * bv;
        }
        workgroupBarrier();
    }
    store_block(bm + tm, bn + tn, array<vec4<f32>, 4>(acc0, acc1, acc2, acc3));
}

// Bias gradient: gb[o] = sum_n gy[n,o], with p.m = samples and p.n = outputs.
@compute @workgroup_size(64)
fn backward_bias(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = linear_id(gid, nwg);
    if o >= p.n {
        return;
    }
    var acc = 0.0;
    for (var s = 0u; s < p.m; s++) {
        acc += gy[s * p.n + o];
    }
    gb[o] = acc;
}
