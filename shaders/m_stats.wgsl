// m_stats — the additive sufficient statistics of the M-step, as per-workgroup partials that the
// host reduces in f64.
//
// CPU references: `backend::reference::moments` and `backend::reference::counts` (same inputs,
// same arithmetic in f64).
//
// Entry point `moments`, one workgroup per (row chunk, class k):
//   Σ_i r_ik d̂_ik  and  Σ_i r_ik d̂_ik d̂_ikᵀ (upper triangle, row-major),
// about the shift μ_k, where d̂ = d₀ A_{o,k} is the conditional-mean fill of the deviation
// d₀ = (x − μ_k) on the observed coordinates (zero elsewhere); A is the identity for the complete
// pattern (o = 0), which skips the product. Rows are staged through workgroup memory in tiles of
// T rows; each invocation owns up to ACC entries of the output and keeps them in registers.
//
// Entry point `counts`, one workgroup per (unit, class k): Σ_{i ∈ unit} r_ik, where a unit is a
// run of at most a few thousand row indices sharing one categorical level (or one missing-value
// pattern), prepared once per fit on the host. The host adds units of the same level, giving
// Σ_i r_ik [x_ij = l] and the per-pattern mass (whose sum over patterns is N_k).

const WG: u32 = 256u;
const T: u32 = 32u;
// ceil((MAX_P + MAX_P (MAX_P + 1) / 2) / WG)
const ACC: u32 = 9u;
const LINEAR: u32 = 0xffffffffu;

// Prepended: shaders/mixture.wgsl (MAX_P, MISSING, Dims, bindings 0-4).
@group(0) @binding(5) var<storage, read> resp: array<f32>;
// moments: (chunk × K) × (p + p(p+1)/2) partials.
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
// counts: per unit, [first index into `members`, length].
@group(0) @binding(7) var<storage, read> units: array<u32>;
// counts: row indices grouped by level (and by pattern).
@group(0) @binding(8) var<storage, read> members: array<u32>;

var<workgroup> tile: array<f32, T * MAX_P>;
var<workgroup> rt: array<f32, T>;
var<workgroup> red: array<f32, WG>;

// The conditional-mean-filled deviation d̂_a of `row` from class k's mean.
fn filled(row: u32, a: u32, k: u32) -> f32 {
    let p = dims.p;
    let pat = rowinfo[row * (dims.j + 1u)];
    let mb = dims.off_means + k * p;
    if pat == 0u {
        return x[row * p + a] - params[mb + a];
    }
    let obs = dims.off_observed + pat * p;
    let fb = dims.off_fill + (pat * dims.k + k) * p * p;
    var v = 0.0;
    for (var b = 0u; b < p; b++) {
        if tables[obs + b] != 0u {
            v += (x[row * p + b] - params[mb + b]) * params[fb + b * p + a];
        }
    }
    return v;
}

@compute @workgroup_size(WG)
fn moments(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let chunk = wid.x;
    let k = wid.y;
    let p = dims.p;
    let n_e = p + p * (p + 1u) / 2u;
    let start = chunk * dims.chunk_rows;
    let end = min(start + dims.chunk_rows, dims.n);

    // Entry e < p is the linear sum of coordinate e; the rest index the upper triangle.
    var ea: array<u32, ACC>;
    var eb: array<u32, ACC>;
    var acc: array<f32, ACC>;
    for (var m = 0u; m < ACC; m++) {
        let e = lid + m * WG;
        if e < p {
            ea[m] = e;
            eb[m] = LINEAR;
        } else if e < n_e {
            var q = e - p;
            var a = 0u;
            while q >= p - a {
                q -= p - a;
                a++;
            }
            ea[m] = a;
            eb[m] = a + q;
        }
        acc[m] = 0.0;
    }

    for (var t0 = start; t0 < end; t0 += T) {
        let rows = min(T, end - t0);
        for (var idx = lid; idx < T * p; idx += WG) {
            let r = idx / p;
            let a = idx % p;
            var v = 0.0;
            if r < rows {
                v = filled(t0 + r, a, k);
            }
            tile[r * p + a] = v;
        }
        if lid < T {
            var w = 0.0;
            if lid < rows {
                w = resp[(t0 + lid) * dims.k + k];
            }
            rt[lid] = w;
        }
        workgroupBarrier();
        for (var m = 0u; m < ACC; m++) {
            let e = lid + m * WG;
            if e < n_e {
                let a = ea[m];
                let b = eb[m];
                var s = 0.0;
                if b == LINEAR {
                    for (var r = 0u; r < rows; r++) {
                        s += rt[r] * tile[r * p + a];
                    }
                } else {
                    for (var r = 0u; r < rows; r++) {
                        s += rt[r] * tile[r * p + a] * tile[r * p + b];
                    }
                }
                acc[m] += s;
            }
        }
        workgroupBarrier();
    }

    let base = (chunk * dims.k + k) * n_e;
    for (var m = 0u; m < ACC; m++) {
        let e = lid + m * WG;
        if e < n_e {
            out[base + e] = acc[m];
        }
    }
}

@compute @workgroup_size(WG)
fn counts(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // Units run along x and y (y only past the per-dimension workgroup limit), classes along z.
    let unit = wid.x + wid.y * nwg.x;
    let k = wid.z;
    if unit >= arrayLength(&units) / 2u {
        return;
    }
    let first = units[unit * 2u];
    let len = units[unit * 2u + 1u];
    var s = 0.0;
    for (var t = lid; t < len; t += WG) {
        s += resp[members[first + t] * dims.k + k];
    }
    red[lid] = s;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        if lid < stride {
            red[lid] += red[lid + stride];
        }
        workgroupBarrier();
    }
    if lid == 0u {
        out[unit * dims.k + k] = red[0];
    }
}
