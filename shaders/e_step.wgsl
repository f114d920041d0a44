// e_step — per row and class, the joint log-density of the latent class model, then a row-wise
// log-sum-exp giving responsibilities and the row log-likelihood.
//
// CPU reference: `backend::reference::e_step` (same inputs, same arithmetic in f64); the fast CPU
// path (`backend::cpu`) and this kernel are both tested against it.
//
//   log p_ik = log π_k + Σ_j log α_kj[x_ij] + log det U_{o,k} − |o|/2 ln 2π − ½ ‖(x_i − μ_k) U_{o,k}‖²
//   lse_i    = m_i + ln Σ_k exp(log p_ik − m_i),   m_i = max_k log p_ik   (one pass, online)
//   r_ik     = exp(log p_ik − lse_i)
//
// U_{o,k} is the precision Cholesky factor of the row's missing-value pattern o embedded in a
// p × p matrix (zero rows and columns at missing coordinates), so one code path serves every
// pattern. One invocation per row; the workgroup reduces Σ lse and the classification entropy
// Σ −r ln r into one partial per workgroup, which the host sums in f64.

const WG: u32 = 128u;

// Prepended: shaders/mixture.wgsl (MAX_P, MISSING, Dims, bindings 0-4).
// n × K: responsibilities out.
@group(0) @binding(5) var<storage, read_write> resp: array<f32>;
// n: row log-likelihoods out.
@group(0) @binding(6) var<storage, read_write> row_ll: array<f32>;
// 2 per workgroup: Σ lse, Σ entropy.
@group(0) @binding(7) var<storage, read_write> partial: array<f32>;

var<workgroup> red_ll: array<f32, WG>;
var<workgroup> red_ent: array<f32, WG>;

@compute @workgroup_size(WG)
fn e_step(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let group = wid.x + wid.y * nwg.x;
    let row = group * WG + lid;
    var ll = 0.0;
    var ent = 0.0;
    if row < dims.n {
        let p = dims.p;
        let kk = dims.k;
        let info = row * (dims.j + 1u);
        let pat = rowinfo[info];
        var xr: array<f32, MAX_P>;
        for (var a = 0u; a < p; a++) {
            xr[a] = x[row * p + a];
        }
        var m = 0.0;
        var s = 0.0;
        for (var k = 0u; k < kk; k++) {
            var lp = params[k] + params[dims.off_norm + pat * kk + k];
            for (var c = 0u; c < dims.j; c++) {
                let code = rowinfo[info + 1u + c];
                if code != MISSING {
                    lp += params[dims.off_alpha + k * dims.tl + tables[c] + code];
                }
            }
            // ‖d U‖² with U upper triangular: y_t = Σ_{a ≤ t} d_a U_at.
            var d: array<f32, MAX_P>;
            let mb = dims.off_means + k * p;
            for (var a = 0u; a < p; a++) {
                d[a] = xr[a] - params[mb + a];
            }
            let ub = dims.off_prec + (pat * kk + k) * p * p;
            var q = 0.0;
            for (var t = 0u; t < p; t++) {
                var y = 0.0;
                for (var a = 0u; a <= t; a++) {
                    y += d[a] * params[ub + a * p + t];
                }
                q += y * y;
            }
            lp -= 0.5 * q;
            resp[row * kk + k] = lp;
            // Online log-sum-exp: s = Σ exp(lp − m) with m the running maximum.
            if k == 0u {
                m = lp;
                s = 1.0;
            } else if lp > m {
                s = s * exp(m - lp) + 1.0;
                m = lp;
            } else {
                s += exp(lp - m);
            }
        }
        let lse = m + log(s);
        for (var k = 0u; k < kk; k++) {
            let v = resp[row * kk + k] - lse;
            let r = exp(v);
            resp[row * kk + k] = r;
            if r > 0.0 {
                ent -= r * v;
            }
        }
        row_ll[row] = lse;
        ll = lse;
    }
    red_ll[lid] = ll;
    red_ent[lid] = ent;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        if lid < stride {
            red_ll[lid] += red_ll[lid + stride];
            red_ent[lid] += red_ent[lid + stride];
        }
        workgroupBarrier();
    }
    if lid == 0u {
        partial[group * 2u] = red_ll[0];
        partial[group * 2u + 1u] = red_ent[0];
    }
}
