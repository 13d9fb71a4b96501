// Counter-based random numbers: Philox2x32-10 (Salmon et al. 2011, "Parallel
// random numbers: as easy as 1, 2, 3").
//
// A random value is a pure function of (key, counter): the key comes from the
// user's seed, the counter from what is being drawn (sample, pixel, step).
// Any invocation can draw any value in any order, so the same seed gives the
// same numbers bit for bit, however the work is split into workgroups.
//
// Other shaders include it with an include line naming `rng` (see
// src/gpu/kernels.rs); it declares no
// bindings.

// 32 x 32 -> 64-bit product as (hi, lo), from 16-bit halves (WGSL has no mulhi).
fn philox_mulhilo(a: u32, b: u32) -> vec2<u32> {
    let a_lo = a & 0xffffu;
    let a_hi = a >> 16u;
    let b_lo = b & 0xffffu;
    let b_hi = b >> 16u;
    let lo_lo = a_lo * b_lo;
    let hi_lo = a_hi * b_lo;
    let lo_hi = a_lo * b_hi;
    let hi_hi = a_hi * b_hi;
    let cross = (lo_lo >> 16u) + (hi_lo & 0xffffu) + (lo_hi & 0xffffu);
    let hi = hi_hi + (hi_lo >> 16u) + (lo_hi >> 16u) + (cross >> 16u);
    return vec2<u32>(hi, a * b);
}

// Philox2x32 with 10 rounds: two 32-bit random words for one (key, counter).
fn philox2x32(key_in: u32, counter: vec2<u32>) -> vec2<u32> {
    var key = key_in;
    var ctr = counter;
    for (var round = 0u; round < 10u; round++) {
        let hl = philox_mulhilo(0xD256D193u, ctr.x);
        ctr = vec2<u32>(hl.x ^ key ^ ctr.y, hl.y);
        key += 0x9E3779B9u;
    }
    return ctr;
}

// A uniform float in [0, 1) from the top 24 bits of a word (exact in f32).
fn rng_unit(word: u32) -> f32 {
    return f32(word >> 8u) * (1.0 / 16777216.0);
}

// A standard normal pair by the Box-Muller transform of two words.
fn rng_normal2(words: vec2<u32>) -> vec2<f32> {
    // 1 - u keeps the logarithm's argument in (0, 1].
    let u1 = 1.0 - rng_unit(words.x);
    let u2 = rng_unit(words.y);
    let r = sqrt(-2.0 * log(u1));
    let t = 6.283185307179586 * u2;
    return vec2<f32>(r * cos(t), r * sin(t));
}
