//! The 16 Hebbian presets of `shared/golden/PRESETS.md` and their optimizers, as typed,
//! serde-readable configuration. A preset is a name plus its params object, exactly as a
//! hebb-case/1 file (or a recipe) writes it; unknown keys are errors.

use serde::Deserialize;
use serde_json::Value;

/// Activation of the hebbdemo presets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DemoActivation {
    Identity,
    Relu,
}

/// Activation of `bcm/curti`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BcmActivation {
    Logistic,
    Relu,
    Linear,
}

/// PRESETS.md §0.4. Optimizers see the gradient g = −ΔW + λ·W.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(tag = "kind", deny_unknown_fields)]
pub enum Optimizer {
    /// PyTorch SGD, dampening 0.
    #[serde(rename = "sgd")]
    Sgd {
        lr: f64,
        momentum: f64,
        nesterov: bool,
        weight_decay: f64,
    },
    /// The `plasticity` package's Adam: ε outside the bias correction.
    #[serde(rename = "adam")]
    Adam {
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
    },
    /// SoftHebb: η_i = lr·(|‖w_i‖ − 1| + 1e-10)^power, w_i ← w_i + η_i·ΔW_i.
    #[serde(rename = "softhebb-adaptive")]
    SofthebbAdaptive { lr: f64, power: f64 },
}

impl Optimizer {
    /// The same optimizer with its learning rate multiplied by `factor`.
    pub fn scaled(self, factor: f64) -> Self {
        let mut o = self;
        match &mut o {
            Optimizer::Sgd { lr, .. }
            | Optimizer::Adam { lr, .. }
            | Optimizer::SofthebbAdaptive { lr, .. } => *lr *= factor,
        }
        o
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Preset {
    LaganiHpca {
        adaptive_step: bool,
    },
    LaganiHpcaTanh {
        adaptive_step: bool,
        var_adaptive: bool,
        bn_momentum: f64,
        bn_eps: f64,
    },
    LaganiKwta {
        k: usize,
    },
    LaganiSoftWtaExp {
        temperature: f64,
    },
    LaganiSoftWtaPow {
        power: f64,
    },
    LaganiIca,
    LaganiHica,
    LaganiIcaNrm {
        bn_momentum: f64,
        bn_eps: f64,
    },
    LaganiFinalSupervised,
    HebbdemoSoftWta {
        t_invert: f64,
        w_nrm: bool,
        activation: DemoActivation,
    },
    HebbdemoHpca {
        w_nrm: bool,
        activation: DemoActivation,
    },
    SofthebbSoftkrotov {
        t_invert: f64,
        /// `e1` of the preset string (`3SoftHebbCnnCIFAR` block 1): U is replaced by
        /// Triangle₁(U) = relu(U − row mean) in the layer's output, the competition and the
        /// decay term.
        pre_triangle: bool,
    },
    SofthebbSoft {
        t_invert: f64,
        bias: bool,
        lr_bias: Option<f64>,
    },
    SofthebbHard,
    BcmCurti {
        activation: BcmActivation,
        lateral_strength: f64,
        gamma: f64,
        theta_eps: f64,
    },
    KrotovHopfield {
        p: f64,
        k: usize,
        delta: f64,
        prec: f64,
    },
}

/// The shape of a preset's update, which decides how its step is composed (`rules::gpu`, one
/// file per family; PRESETS.md gives each rule's formulas).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateFamily {
    /// ΔW = s·GᵀX − s·tril(GᵀG)·W: Lagani's HPCA (relu, tanh), hebbdemo's HPCA.
    Sanger,
    /// ΔW = diag(1/guard(colsum|G|))·[(G⊙|G|)ᵀX − diag(colsum(G⊙|G|))·W]: Lagani's k-WTA,
    /// soft-WTA and supervised final layer, hebbdemo's soft-WTA.
    Wta,
    /// ΔW = W − M·W with M = (1/N)·YᵀU (lower triangle for HICA), or ICA-NRM's per-row form.
    Ica,
    /// R = YᵀX − diag(colsum(Y⊙U))·W, ΔW = R / max|R|: SoftHebb's three presets, Krotov.
    DecayNormalised,
    /// ΔW = (1/B)·ΦᵀX with Φ = y(y − θ) from the lateral currents: Curti's BCM.
    Bcm,
}

/// The weights W̃ a preset projects onto, U = X·W̃ᵀ (C x D, like W). The layer's forward
/// output and the rule's step both take W̃ from here (`GpuRule::forward_weights`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ForwardWeights {
    /// W̃ = W.
    Raw,
    /// W̃ = sign(W)·|W|^exponent (Krotov's currents, exponent p − 1).
    SignedPower { exponent: f32 },
    /// W̃_i = w_i / guard(‖w_i‖) (Lagani's WTA vector projection, hebbdemo's `w_nrm`).
    UnitRows,
}

impl Preset {
    /// Which update family the preset's step belongs to.
    pub fn update_family(&self) -> UpdateFamily {
        match self {
            Preset::LaganiHpca { .. }
            | Preset::LaganiHpcaTanh { .. }
            | Preset::HebbdemoHpca { .. } => UpdateFamily::Sanger,
            Preset::LaganiKwta { .. }
            | Preset::LaganiSoftWtaExp { .. }
            | Preset::LaganiSoftWtaPow { .. }
            | Preset::LaganiFinalSupervised
            | Preset::HebbdemoSoftWta { .. } => UpdateFamily::Wta,
            Preset::LaganiIca | Preset::LaganiHica | Preset::LaganiIcaNrm { .. } => {
                UpdateFamily::Ica
            }
            Preset::SofthebbSoftkrotov { .. }
            | Preset::SofthebbSoft { .. }
            | Preset::SofthebbHard
            | Preset::KrotovHopfield { .. } => UpdateFamily::DecayNormalised,
            Preset::BcmCurti { .. } => UpdateFamily::Bcm,
        }
    }

    /// The weights W̃ of the preset's projection U = X·W̃ᵀ. Lagani's WTA rules divide by ‖w_i‖
    /// inside their similarity (the raised cosine reads both norms), so their step projects
    /// onto W and the quotient equals the projection onto these unit rows.
    pub fn forward_weights(&self) -> ForwardWeights {
        match *self {
            Preset::KrotovHopfield { p, .. } if p != 2.0 => ForwardWeights::SignedPower {
                exponent: (p - 1.0) as f32,
            },
            Preset::LaganiKwta { .. }
            | Preset::LaganiSoftWtaExp { .. }
            | Preset::LaganiSoftWtaPow { .. }
            | Preset::HebbdemoSoftWta { w_nrm: true, .. }
            | Preset::HebbdemoHpca { w_nrm: true, .. } => ForwardWeights::UnitRows,
            _ => ForwardWeights::Raw,
        }
    }
}

/// A preset with its optimizer: everything needed to run one Hebbian layer's training steps.
/// Deserialises from `{"preset": "softhebb/softkrotov", "params": {..., "optimizer": {...}}}`
/// (or the same keys in a TOML table), validating the params against the preset.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(try_from = "RawRule")]
pub struct RuleConfig {
    pub name: String,
    pub preset: Preset,
    pub optimizer: Optimizer,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    preset: String,
    params: Value,
}

impl TryFrom<RawRule> for RuleConfig {
    type Error = String;
    fn try_from(raw: RawRule) -> Result<Self, String> {
        RuleConfig::from_params(&raw.preset, &raw.params)
    }
}

pub const PRESET_NAMES: [&str; 16] = [
    "lagani/hpca",
    "lagani/hpca-tanh",
    "lagani/kwta",
    "lagani/soft-wta-exp",
    "lagani/soft-wta-pow",
    "lagani/ica",
    "lagani/hica",
    "lagani/ica-nrm",
    "lagani/final-supervised",
    "hebbdemo/soft-wta",
    "hebbdemo/hpca",
    "softhebb/softkrotov",
    "softhebb/soft",
    "softhebb/hard",
    "bcm/curti",
    "krotov/hopfield",
];

// Param structs per preset, so serde rejects unknown or missing keys by name.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Hpca {
    adaptive_step: bool,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HpcaTanh {
    adaptive_step: bool,
    var_adaptive: bool,
    bn_momentum: f64,
    bn_eps: f64,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Kwta {
    k: usize,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SoftWtaExp {
    temperature: f64,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SoftWtaPow {
    power: f64,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IcaNrm {
    bn_momentum: f64,
    bn_eps: f64,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DemoSoftWta {
    t_invert: f64,
    w_nrm: bool,
    activation: DemoActivation,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DemoHpca {
    w_nrm: bool,
    activation: DemoActivation,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SoftKrotov {
    t_invert: f64,
    #[serde(default)]
    pre_triangle: bool,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Soft {
    t_invert: f64,
    bias: bool,
    #[serde(default)]
    lr_bias: Option<f64>,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Bcm {
    activation: BcmActivation,
    lateral_strength: f64,
    gamma: f64,
    theta_eps: f64,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Krotov {
    p: f64,
    k: usize,
    delta: f64,
    prec: f64,
}

/// The path (`params.optimizer.lr`) of the first null in `value`, depth first.
fn first_null(path: &str, value: &Value) -> Option<String> {
    match value {
        Value::Null => Some(path.to_string()),
        Value::Object(map) => map
            .iter()
            .find_map(|(k, v)| first_null(&format!("{path}.{k}"), v)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| first_null(&format!("{path}[{i}]"), v)),
        _ => None,
    }
}

fn parse<T: serde::de::DeserializeOwned>(name: &str, params: Value) -> Result<T, String> {
    serde_json::from_value(params).map_err(|e| format!("params of {name}: {e}"))
}

impl RuleConfig {
    /// Builds a rule from a preset name and its params object (which holds `optimizer`).
    pub fn from_params(name: &str, params: &Value) -> Result<Self, String> {
        // TOML's nan and inf arrive as JSON null (JSON has no such numbers); no param is ever
        // null, so name the first one rather than let serde say "invalid type: null".
        if let Some(field) = first_null("params", params) {
            return Err(format!(
                "{field} of {name} is not a number (nan, inf and null are not allowed)"
            ));
        }
        let mut params = params
            .as_object()
            .ok_or_else(|| format!("params of {name}: expected an object"))?
            .clone();
        let optimizer = params
            .remove("optimizer")
            .ok_or_else(|| format!("params of {name}: missing `optimizer`"))?;
        let optimizer: Optimizer = serde_json::from_value(optimizer)
            .map_err(|e| format!("params.optimizer of {name}: {e}"))?;
        let params = Value::Object(params);
        let preset = match name {
            "lagani/hpca" => {
                let p: Hpca = parse(name, params)?;
                Preset::LaganiHpca {
                    adaptive_step: p.adaptive_step,
                }
            }
            "lagani/hpca-tanh" => {
                let p: HpcaTanh = parse(name, params)?;
                Preset::LaganiHpcaTanh {
                    adaptive_step: p.adaptive_step,
                    var_adaptive: p.var_adaptive,
                    bn_momentum: p.bn_momentum,
                    bn_eps: p.bn_eps,
                }
            }
            "lagani/kwta" => {
                let p: Kwta = parse(name, params)?;
                if p.k == 0 {
                    return Err(format!("params.k of {name} must be at least 1"));
                }
                Preset::LaganiKwta { k: p.k }
            }
            "lagani/soft-wta-exp" => {
                let p: SoftWtaExp = parse(name, params)?;
                Preset::LaganiSoftWtaExp {
                    temperature: p.temperature,
                }
            }
            "lagani/soft-wta-pow" => {
                let p: SoftWtaPow = parse(name, params)?;
                Preset::LaganiSoftWtaPow { power: p.power }
            }
            "lagani/ica" => {
                parse::<NoParams>(name, params)?;
                Preset::LaganiIca
            }
            "lagani/hica" => {
                parse::<NoParams>(name, params)?;
                Preset::LaganiHica
            }
            "lagani/ica-nrm" => {
                let p: IcaNrm = parse(name, params)?;
                Preset::LaganiIcaNrm {
                    bn_momentum: p.bn_momentum,
                    bn_eps: p.bn_eps,
                }
            }
            "lagani/final-supervised" => {
                parse::<NoParams>(name, params)?;
                Preset::LaganiFinalSupervised
            }
            "hebbdemo/soft-wta" => {
                let p: DemoSoftWta = parse(name, params)?;
                Preset::HebbdemoSoftWta {
                    t_invert: p.t_invert,
                    w_nrm: p.w_nrm,
                    activation: p.activation,
                }
            }
            "hebbdemo/hpca" => {
                let p: DemoHpca = parse(name, params)?;
                Preset::HebbdemoHpca {
                    w_nrm: p.w_nrm,
                    activation: p.activation,
                }
            }
            "softhebb/softkrotov" => {
                let p: SoftKrotov = parse(name, params)?;
                Preset::SofthebbSoftkrotov {
                    t_invert: p.t_invert,
                    pre_triangle: p.pre_triangle,
                }
            }
            "softhebb/soft" => {
                let p: Soft = parse(name, params)?;
                if p.bias && p.lr_bias.is_none() {
                    return Err(format!("params of {name}: `bias` needs `lr_bias`"));
                }
                Preset::SofthebbSoft {
                    t_invert: p.t_invert,
                    bias: p.bias,
                    lr_bias: p.lr_bias,
                }
            }
            "softhebb/hard" => {
                parse::<NoParams>(name, params)?;
                Preset::SofthebbHard
            }
            "bcm/curti" => {
                let p: Bcm = parse(name, params)?;
                Preset::BcmCurti {
                    activation: p.activation,
                    lateral_strength: p.lateral_strength,
                    gamma: p.gamma,
                    theta_eps: p.theta_eps,
                }
            }
            "krotov/hopfield" => {
                let p: Krotov = parse(name, params)?;
                if p.k < 2 {
                    return Err(format!(
                        "params.k of {name} must be at least 2 (got {})",
                        p.k
                    ));
                }
                Preset::KrotovHopfield {
                    p: p.p,
                    k: p.k,
                    delta: p.delta,
                    prec: p.prec,
                }
            }
            other => {
                return Err(format!(
                    "unknown preset {other:?}; expected one of {}",
                    PRESET_NAMES.join(", ")
                ));
            }
        };
        let rule = Self {
            name: name.to_string(),
            preset,
            optimizer,
        };
        rule.check_values()
            .map_err(|e| format!("{name}: params.{e}"))?;
        Ok(rule)
    }

    /// Every number must be finite, and rates, temperatures, powers and ε positive; the error
    /// names the field.
    fn check_values(&self) -> Result<(), String> {
        use crate::nn::recipe::{check_adam, check_sgd, finite, non_negative, positive};
        match self.optimizer {
            Optimizer::Sgd {
                lr,
                momentum,
                weight_decay,
                ..
            } => check_sgd("optimizer", lr, momentum, weight_decay)?,
            Optimizer::Adam {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
            } => check_adam("optimizer", lr, (beta1, beta2), eps, weight_decay)?,
            Optimizer::SofthebbAdaptive { lr, power } => {
                positive("optimizer.lr", lr)?;
                non_negative("optimizer.power", power)?;
            }
        }
        let momentum = |m: f64| {
            if (0.0..=1.0).contains(&m) {
                Ok(())
            } else {
                Err(format!("bn_momentum = {m} must be in [0, 1]"))
            }
        };
        match self.preset {
            Preset::LaganiHpcaTanh {
                bn_momentum,
                bn_eps,
                ..
            }
            | Preset::LaganiIcaNrm {
                bn_momentum,
                bn_eps,
            } => {
                momentum(bn_momentum)?;
                positive("bn_eps", bn_eps)?;
            }
            Preset::LaganiSoftWtaExp { temperature } => positive("temperature", temperature)?,
            Preset::LaganiSoftWtaPow { power } => positive("power", power)?,
            Preset::HebbdemoSoftWta { t_invert, .. }
            | Preset::SofthebbSoftkrotov { t_invert, .. }
            | Preset::SofthebbSoft { t_invert, .. } => positive("t_invert", t_invert)?,
            Preset::BcmCurti {
                lateral_strength,
                gamma,
                theta_eps,
                ..
            } => {
                finite("lateral_strength", lateral_strength)?;
                finite("gamma", gamma)?;
                finite("theta_eps", theta_eps)?;
            }
            Preset::KrotovHopfield { p, delta, prec, .. } => {
                positive("p", p)?;
                finite("delta", delta)?;
                positive("prec", prec)?;
            }
            _ => {}
        }
        if let Preset::SofthebbSoft {
            lr_bias: Some(lr), ..
        } = self.preset
        {
            positive("lr_bias", lr)?;
        }
        Ok(())
    }

    /// The Lagani presets take a teacher signal T.
    pub fn takes_teacher(&self) -> bool {
        matches!(
            self.preset,
            Preset::LaganiHpca { .. }
                | Preset::LaganiHpcaTanh { .. }
                | Preset::LaganiKwta { .. }
                | Preset::LaganiSoftWtaExp { .. }
                | Preset::LaganiSoftWtaPow { .. }
                | Preset::LaganiFinalSupervised
        )
    }
}
