// A convolution's gradient to its input, second half: the gather.
//
// The first half is a matrix product (`gemm` in linear.wgsl, set up in
// src/nn/ops.rs) over a chunk of `chunk` samples starting at sample `first`:
//
//   col[r, n, oh, ow] = sum_co w[co, r] * gy[first + n, co, oh, ow]
//
// for every tap r = (ci, kh, kw) of the weights w [Co, Ci, K, K]; layout
// col [Ci*K*K, chunk, Ho, Wo]. Each input position then sums the taps that
// reach it (stride S, zero padding P, as in conv2d.wgsl):
//
//   gx[first+n, ci, ih, iw] = sum_{kh,kw} col[(ci,kh,kw), n, oh, ow]
//       over oh = (ih + P - kh) / S, ow = (iw + P - kw) / S whole and in range.
//
// Unlike a convolution over a zero-padded gradient, nothing multiplies the
// padding, and the sum has a fixed order (a gather, no atomics).
//
// Bindings: 0 params (uniform); 1 col; 2 gx [N, Ci, H, W].
// Dispatch: one invocation per value of the chunk's gx, 64-wide workgroups,
// linear index gid.x + gid.y * num_workgroups.x * 64.

struct Params {
    chunk: u32,
    first: u32,
    in_c: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    k: u32,
    stride: u32,
    pad: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> col: array<f32>;
@group(0) @binding(2) var<storage, read_write> gx: array<f32>;

// Output index reached from input index i through tap t, or -1 when it is
// not whole or out of range.
fn through(i: u32, t: u32, size: u32) -> i32 {
    let r = i32(i) + i32(p.pad) - i32(t);
    let s = i32(p.stride);
    if r < 0 || r % s != 0 || r / s >= i32(size) {
        return -1;
    }
    return r / s;
}

@compute @workgroup_size(64)
fn col2im(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    let image = p.in_c * p.in_h * p.in_w;
    if i >= p.chunk * image {
        return;
    }
    let iw = i % p.in_w;
    let ih = (i / p.in_w) % p.in_h;
    let ci = (i / (p.in_w * p.in_h)) % p.in_c;
    let n = i / image;
    let plane = p.out_h * p.out_w;
    let row_len = p.chunk * plane;

    var acc = 0.0;
    for (var kh = 0u; kh < p.k; kh++) {
        let oh = through(ih, kh, p.out_h);
        if oh < 0 {
            continue;
        }
        for (var kw = 0u; kw < p.k; kw++) {
            let ow = through(iw, kw, p.out_w);
            if ow < 0 {
                continue;
            }
            let r = (ci * p.k + kh) * p.k + kw;
            acc += col[r * row_len + n * plane + u32(oh) * p.out_w + u32(ow)];
        }
    }
    gx[p.first * image + i] = acc;
}
