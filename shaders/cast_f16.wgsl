// Casts between f32 and native f16 storage (needs SHADER_F16). Same byte layout and semantics
// as cast.wgsl, one invocation per element.
enable f16;

// Bounds: element i < n; the launcher checks both tensors hold n.

struct CastParams {
    n: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: CastParams;
@group(0) @binding(1) var<storage, read> src_f32: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst_f16: array<f16>;
@group(0) @binding(3) var<storage, read> src_f16: array<f16>;
@group(0) @binding(4) var<storage, read_write> dst_f32: array<f32>;

fn index(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wg.y * nwg.x + wg.x) * 256u + lid;
}

@compute @workgroup_size(256, 1, 1)
fn f32_to_f16(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let i = index(wg, nwg, lid);
    if (i < p.n) { dst_f16[i] = f16(src_f32[i]); }
}

@compute @workgroup_size(256, 1, 1)
fn f16_to_f32(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let i = index(wg, nwg, lid);
    if (i < p.n) { dst_f32[i] = f32(src_f16[i]); }
}
