//! Hebbian learning rules: the presets of `shared/golden/PRESETS.md` (`preset`) and the
//! hebb-case/1 conformance cases made from the authors' code (`case`).

pub mod case;
pub mod gpu;
pub mod preset;

pub use case::{Case, CaseError, load_case};
pub use gpu::{FromForward, GpuRule, RuleInit};
pub use preset::{Optimizer, Preset, RuleConfig};
