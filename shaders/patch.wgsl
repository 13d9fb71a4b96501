// An adversarial patch pasted onto images at random placements (expectation
// over transformation, Brown et al. 2017), and the gradient carried back
// from the pasted images to the patch pixels.
//
// Layout: data [images, C, H, W] (the images patches are pasted on); patch
// [C, ph, pw]; mask [ph, pw] in [0, 1] (the patch's shape: round, square or
// an image); transforms [batch] one Transform per slot; x, grad_x [batch, C,
// H, W] (the model's input and the loss gradient there, NCHW); grad_patch
// [C, ph, pw]; counter [1] u32, the number of steps taken.
//
// Placement of slot b, from Philox (rng.wgsl) with the counter
// (draw, 0) and (draw, 1), draw = draw_base + counter * batch + b:
//   s     = scale_min + (scale_max - scale_min) * u0
//   theta = rotation * (2 * u1 - 1)
//   the centre (cx, cy) uniform over the positions where the bounding box of
//   the scaled, rotated patch lies inside the image (the image centre when
//   the box is larger than the image): with subpixel = 0 the box's corner is
//   on the pixel grid, one of floor(room) + 1 positions per axis (room =
//   image size - box size), so that at scale 1 without rotation the patch is
//   pasted pixel for pixel; with subpixel = 1 it is anywhere in [0, room]
//   image = word (draw, 2) mod images (random_image = 1), or first_image + b
//
// Sampling. Image pixel (x, y) has its centre at q = (x + 1/2, y + 1/2); it
// sees the patch at index-space coordinates (pixel (i, j) of the patch has
// its centre at (j, i)):
//   (u, v) = R(-theta) (q - c) / s + (pw / 2 - 1/2, ph / 2 - 1/2)
// Bilinear taps at (j0, i0) = floor(u, v), fractions (ax, ay) = (u, v) - (j0, i0),
// weights w_k = (1 - ax or ax) * (1 - ay or ay); taps off the patch count 0.
// With premultiplied shape weights:
//   alpha    = sum_k w_k M_k
//   x[b,c,q] = data[image, c, q] * (1 - alpha) + sum_k w_k M_k P[c, k]
// which is linear in P, so
//   dL/dP[c, k] = M_k * sum_b sum_q grad_x[b, c, q] * w_k(b, q).
// `paste_backward` computes that sum by gathering, one invocation per patch
// value: it visits the pixels near the patch pixel's centre in each image
// (those within s * (|cos| + |sin|) + 1 of it on each axis, outside which
// w_k is 0) and recomputes each pixel's taps exactly as `paste` does. The
// order of the sum is fixed, so the gradient is the same on every run; no
// atomics are needed.
//
// Bindings: 0 params (uniform); 1 data; 2 patch; 3 mask; 4 transforms; 5 x;
// 6 grad_x; 7 grad_patch; 8 counter. (`patch` is a reserved word in WGSL:
// the patch binding is called patch_values.)
// Dispatch: 64-wide workgroups: draw per slot (batch), paste per input value
// (batch * C * H * W), paste_backward per patch value (C * ph * pw).

// #include rng

struct Params {
    batch: u32,         // slots of the input buffer
    n: u32,             // real images; slots >= n are zeroed and not in the gradient
    channels: u32,
    height: u32,
    width: u32,
    patch_h: u32,
    patch_w: u32,
    images: u32,        // images in `data`
    key: u32,           // Philox key
    random_image: u32,  // 1: each slot draws an image; 0: slot b takes first_image + b
    first_image: u32,
    draw_base: u32,     // added to the draw counter (fresh placements for evaluation)
    scale_min: f32,
    scale_max: f32,
    rotation: f32,      // largest |theta|, radians
    subpixel: u32,      // 1: centres anywhere; 0: box corners on the pixel grid
}

struct Transform {
    cx: f32,
    cy: f32,
    scale: f32,
    cos: f32,
    sin: f32,
    image: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> data: array<f32>;
@group(0) @binding(2) var<storage, read> patch_values: array<f32>;
@group(0) @binding(3) var<storage, read> mask: array<f32>;
@group(0) @binding(4) var<storage, read_write> transforms: array<Transform>;
@group(0) @binding(5) var<storage, read_write> x: array<f32>;
@group(0) @binding(6) var<storage, read> grad_x: array<f32>;
@group(0) @binding(7) var<storage, read_write> grad_patch: array<f32>;
@group(0) @binding(8) var<storage, read> counter: array<u32>;

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 64u;
}

// Where image pixel (px, py) looks in the patch, in patch index space.
fn patch_coords(t: Transform, px: u32, py: u32) -> vec2<f32> {
    let dx = f32(px) + 0.5 - t.cx;
    let dy = f32(py) + 0.5 - t.cy;
    let u = (t.cos * dx + t.sin * dy) / t.scale + 0.5 * f32(p.patch_w) - 0.5;
    let v = (t.cos * dy - t.sin * dx) / t.scale + 0.5 * f32(p.patch_h) - 0.5;
    return vec2<f32>(u, v);
}

// The centre coordinate along one axis: uniform where the half extent fits.
fn place(u: f32, half: f32, size: f32) -> f32 {
    let room = size - 2.0 * half;
    if room <= 0.0 {
        return 0.5 * size;
    }
    if p.subpixel != 0u {
        return half + room * u;
    }
    return half + floor(u * (floor(room) + 1.0));
}

// Per slot: this step's transformation.
@compute @workgroup_size(64)
fn draw(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let b = linear_id(gid, nwg);
    if b >= p.batch {
        return;
    }
    let draw = p.draw_base + counter[0] * p.batch + b;
    let w0 = philox2x32(p.key, vec2<u32>(draw, 0u));
    let w1 = philox2x32(p.key, vec2<u32>(draw, 1u));
    let s = p.scale_min + (p.scale_max - p.scale_min) * rng_unit(w0.x);
    let theta = p.rotation * (2.0 * rng_unit(w0.y) - 1.0);
    let c = cos(theta);
    let sn = sin(theta);
    let pw = f32(p.patch_w);
    let ph = f32(p.patch_h);
    let half_x = 0.5 * s * (abs(c) * pw + abs(sn) * ph);
    let half_y = 0.5 * s * (abs(sn) * pw + abs(c) * ph);

    var t: Transform;
    t.cx = place(rng_unit(w1.x), half_x, f32(p.width));
    t.cy = place(rng_unit(w1.y), half_y, f32(p.height));
    t.scale = s;
    t.cos = c;
    t.sin = sn;
    if p.random_image != 0u {
        t.image = philox2x32(p.key, vec2<u32>(draw, 2u)).x % p.images;
    } else {
        t.image = min(p.first_image + b, p.images - 1u);
    }
    t._pad0 = 0u;
    t._pad1 = 0u;
    transforms[b] = t;
}

// Per input value: the image with the patch pasted on.
@compute @workgroup_size(64)
fn paste(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    let plane = p.height * p.width;
    let per_image = p.channels * plane;
    if i >= p.batch * per_image {
        return;
    }
    let b = i / per_image;
    if b >= p.n {
        x[i] = 0.0;
        return;
    }
    let rem = i % per_image;
    let ch = rem / plane;
    let pix = rem % plane;
    let t = transforms[b];
    let uv = patch_coords(t, pix % p.width, pix / p.width);
    let j0 = floor(uv.x);
    let i0 = floor(uv.y);
    let a = uv - vec2<f32>(j0, i0);

    var alpha = 0.0;
    var colour = 0.0;
    for (var tap = 0u; tap < 4u; tap++) {
        let dj = tap & 1u;
        let di = tap >> 1u;
        let jj = i32(j0) + i32(dj);
        let ii = i32(i0) + i32(di);
        if jj < 0 || ii < 0 || jj >= i32(p.patch_w) || ii >= i32(p.patch_h) {
            continue;
        }
        let wx = select(1.0 - a.x, a.x, dj == 1u);
        let wy = select(1.0 - a.y, a.y, di == 1u);
        let q = u32(ii) * p.patch_w + u32(jj);
        let wm = wx * wy * mask[q];
        alpha += wm;
        colour += wm * patch_values[ch * p.patch_h * p.patch_w + q];
    }
    x[i] = data[t.image * per_image + rem] * (1.0 - alpha) + colour;
}

// Per patch value: the gradient of the loss with respect to it, gathered over
// the batch (see the header).
@compute @workgroup_size(64)
fn paste_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = linear_id(gid, nwg);
    let area = p.patch_h * p.patch_w;
    if k >= p.channels * area {
        return;
    }
    let ch = k / area;
    let q = k % area;
    let pi = q / p.patch_w;
    let pj = q % p.patch_w;
    let m = mask[q];
    if m == 0.0 {
        grad_patch[k] = 0.0;
        return;
    }
    let plane = p.height * p.width;
    let per_image = p.channels * plane;
    let rx0 = f32(pj) + 0.5 - 0.5 * f32(p.patch_w);
    let ry0 = f32(pi) + 0.5 - 0.5 * f32(p.patch_h);

    var sum = 0.0;
    for (var b = 0u; b < p.n; b++) {
        let t = transforms[b];
        let rx = rx0 * t.scale;
        let ry = ry0 * t.scale;
        let cx = t.cx + t.cos * rx - t.sin * ry;
        let cy = t.cy + t.sin * rx + t.cos * ry;
        let reach = t.scale * (abs(t.cos) + abs(t.sin)) + 1.0;
        let x_lo = max(i32(floor(cx - reach - 0.5)), 0);
        let x_hi = min(i32(ceil(cx + reach - 0.5)), i32(p.width) - 1);
        let y_lo = max(i32(floor(cy - reach - 0.5)), 0);
        let y_hi = min(i32(ceil(cy + reach - 0.5)), i32(p.height) - 1);
        let base = b * per_image + ch * plane;
        for (var py = y_lo; py <= y_hi; py++) {
            for (var px = x_lo; px <= x_hi; px++) {
                let uv = patch_coords(t, u32(px), u32(py));
                let j0 = floor(uv.x);
                let i0 = floor(uv.y);
                let a = uv - vec2<f32>(j0, i0);
                let dj = i32(pj) - i32(j0);
                let di = i32(pi) - i32(i0);
                if dj < 0 || dj > 1 || di < 0 || di > 1 {
                    continue;
                }
                let wx = select(1.0 - a.x, a.x, dj == 1);
                let wy = select(1.0 - a.y, a.y, di == 1);
                sum += grad_x[base + u32(py) * p.width + u32(px)] * (wx * wy);
            }
        }
    }
    grad_patch[k] = m * sum;
}
