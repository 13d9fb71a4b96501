// Max and average pooling over K x K windows with stride S, no padding, floor mode.
//
// Layout: x [N, C, H, W] seen as planes = N * C images of H x W; y [N, C, Ho, Wo],
// Ho = (H - K) / S + 1.
//
//   max:  y[o] = max over the window of o;  gx[i] = sum of gy[o] over the windows o
//         whose first maximum (row-major, as PyTorch picks it) is at i
//   avg:  y[o] = mean over the window of o; gx[i] = sum of gy[o] / K^2 over the
//         windows o that contain i
//
// Backward passes gather: one invocation per input element visits the few
// windows that cover it, so overlapping windows need no atomics. When the
// windows do not overlap (S = K), `max_backward_disjoint` instead runs one
// invocation per window, which finds its maximum once and writes the whole
// window (and, for the last row or column of windows, the uncovered tail
// that floor mode leaves, with zeros).
//
// Bindings: 0 params (uniform); 1 x; 2 y; 3 gy; 4 gx.
// Dispatch: 64-wide workgroups, linear index gid.x + gid.y * num_workgroups.x * 64.

struct Params {
    planes: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    k: u32,
    stride: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> gy: array<f32>;
@group(0) @binding(4) var<storage, read_write> gx: array<f32>;

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 64u;
}

// Index into x of the first maximum of window (oh, ow) in plane `plane`.
fn argmax_window(plane: u32, oh: u32, ow: u32) -> u32 {
    let base = plane * p.in_h * p.in_w;
    var best = base + (oh * p.stride) * p.in_w + ow * p.stride;
    var best_v = x[best];
    for (var kh = 0u; kh < p.k; kh++) {
        for (var kw = 0u; kw < p.k; kw++) {
            let i = base + (oh * p.stride + kh) * p.in_w + ow * p.stride + kw;
            let v = x[i];
            // Strictly greater keeps the first maximum; a NaN is taken, as PyTorch does.
            if v > best_v || (v != v && best_v == best_v) {
                best = i;
                best_v = v;
            }
        }
    }
    return best;
}

@compute @workgroup_size(64)
fn max_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = linear_id(gid, nwg);
    let per_plane = p.out_h * p.out_w;
    if o >= p.planes * per_plane {
        return;
    }
    let plane = o / per_plane;
    let r = o % per_plane;
    y[o] = x[argmax_window(plane, r / p.out_w, r % p.out_w)];
}

// The output windows that contain input row (or column) i: o in [lo, hi].
fn window_range(i: u32, out_len: u32) -> vec2<u32> {
    // o * S <= i  and  o * S + K - 1 >= i
    var lo = 0u;
    if i + 1u > p.k {
        lo = (i + 1u - p.k + p.stride - 1u) / p.stride;
    }
    let hi = min(i / p.stride, out_len - 1u);
    return vec2<u32>(lo, hi);
}

@compute @workgroup_size(64)
fn max_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    let per_plane = p.in_h * p.in_w;
    if i >= p.planes * per_plane {
        return;
    }
    let plane = i / per_plane;
    let r = i % per_plane;
    let rows = window_range(r / p.in_w, p.out_h);
    let cols = window_range(r % p.in_w, p.out_w);
    var acc = 0.0;
    for (var oh = rows.x; oh <= rows.y; oh++) {
        for (var ow = cols.x; ow <= cols.y; ow++) {
            if argmax_window(plane, oh, ow) == i {
                acc += gy[(plane * p.out_h + oh) * p.out_w + ow];
            }
        }
    }
    gx[i] = acc;
}

@compute @workgroup_size(64)
fn avg_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = linear_id(gid, nwg);
    let per_plane = p.out_h * p.out_w;
    if o >= p.planes * per_plane {
        return;
    }
    let plane = o / per_plane;
    let r = o % per_plane;
    let base = plane * p.in_h * p.in_w + (r / p.out_w) * p.stride * p.in_w + (r % p.out_w) * p.stride;
    var acc = 0.0;
    for (var kh = 0u; kh < p.k; kh++) {
        for (var kw = 0u; kw < p.k; kw++) {
            acc += x[base + kh * p.in_w + kw];
        }
    }
    y[o] = acc / f32(p.k * p.k);
}

@compute @workgroup_size(64)
fn avg_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    let per_plane = p.in_h * p.in_w;
    if i >= p.planes * per_plane {
        return;
    }
    let plane = i / per_plane;
    let r = i % per_plane;
    let rows = window_range(r / p.in_w, p.out_h);
    let cols = window_range(r % p.in_w, p.out_w);
    var acc = 0.0;
    for (var oh = rows.x; oh <= rows.y; oh++) {
        for (var ow = cols.x; ow <= cols.y; ow++) {
            acc += gy[(plane * p.out_h + oh) * p.out_w + ow];
        }
    }
    gx[i] = acc / f32(p.k * p.k);
}

// Stride equal to the kernel size: one invocation per window writes gy to
// its first maximum and zero to every other value it covers.
@compute @workgroup_size(64)
fn max_backward_disjoint(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = linear_id(gid, nwg);
    let per_plane = p.out_h * p.out_w;
    if o >= p.planes * per_plane {
        return;
    }
    let plane = o / per_plane;
    let oh = (o % per_plane) / p.out_w;
    let ow = o % p.out_w;
    let best = argmax_window(plane, oh, ow);
    let g = gy[o];
    var row_end = oh * p.k + p.k;
    if oh + 1u == p.out_h {
        row_end = p.in_h;
    }
    var col_end = ow * p.k + p.k;
    if ow + 1u == p.out_w {
        col_end = p.in_w;
    }
    let base = plane * p.in_h * p.in_w;
    for (var r = oh * p.k; r < row_end; r++) {
        for (var c = ow * p.k; c < col_end; c++) {
            let i = base + r * p.in_w + c;
            gx[i] = select(0.0, g, i == best);
        }
    }
}
