//! A search over culture seeds and recipe settings (`hebb spiking --seeds … --set KEY=V1,V2`):
//! the points of the search are independent runs, spread round-robin over the ranks of a
//! process group (`crate::dist`), and gathered into one table on rank 0.

use std::path::PathBuf;

use serde::Serialize;

use crate::dist::Collective;
use crate::error::{HebbError, Result};
use crate::gpu::GpuContext;
use crate::spiking::recipe::SpikingRecipe;
use crate::spiking::task::{self, SpikingOptions};

/// One run of a search: a seed and the settings that differ from the recipe.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SearchPoint {
    /// The run's folder name under the search's output folder.
    pub name: String,
    pub seed: u64,
    /// (dotted recipe key, TOML value) pairs, in the order given.
    pub settings: Vec<(String, String)>,
}

/// The grid: every seed with every combination of the settings' values (the last setting
/// varying fastest).
pub fn points(seeds: &[u64], grid: &[(String, Vec<String>)]) -> Vec<SearchPoint> {
    let mut combos: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for (key, values) in grid {
        combos = combos
            .into_iter()
            .flat_map(|c| {
                values.iter().map(move |v| {
                    let mut c = c.clone();
                    c.push((key.clone(), v.clone()));
                    c
                })
            })
            .collect();
    }
    seeds
        .iter()
        .flat_map(|&seed| {
            combos.iter().map(move |settings| {
                let mut name = format!("seed{seed}");
                for (k, v) in settings {
                    let key = k.rsplit('.').next().unwrap_or(k);
                    let value: String = v
                        .chars()
                        .map(|c| {
                            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                                c
                            } else {
                                '_'
                            }
                        })
                        .collect();
                    name.push_str(&format!("-{key}{value}"));
                }
                SearchPoint {
                    name,
                    seed,
                    settings: settings.clone(),
                }
            })
        })
        .collect()
}

/// Parses `KEY=V1,V2,...` (a dotted key of the recipe and TOML values).
pub fn parse_setting(text: &str) -> Result<(String, Vec<String>)> {
    let bad =
        |why: &str| HebbError::Config(format!("--set {text}: {why} (expected KEY=V1,V2,...)"));
    let (key, values) = text.split_once('=').ok_or_else(|| bad("no '='"))?;
    let key = key.trim();
    if key.is_empty() || key.split('.').any(|p| p.trim().is_empty()) {
        return Err(bad("an empty key"));
    }
    let values: Vec<String> = values.split(',').map(|v| v.trim().to_string()).collect();
    if values.iter().any(|v| v.is_empty()) {
        return Err(bad("an empty value"));
    }
    Ok((key.to_string(), values))
}

/// The recipe `text` with the point's seed and settings, checked as any recipe is; errors
/// name the setting.
pub fn recipe_for(text: &str, origin: &str, point: &SearchPoint) -> Result<SpikingRecipe> {
    let mut doc: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| HebbError::Format {
            path: origin.into(),
            message: crate::nn::recipe::printable(&e.to_string()),
        })?;
    doc.insert("seed".into(), toml::Value::Integer(point.seed as i64));
    for (key, value) in &point.settings {
        let parsed: toml::Table =
            format!("v = {value}")
                .parse()
                .map_err(|e: toml::de::Error| {
                    HebbError::Config(format!(
                        "--set {key}={value}: not a TOML value ({})",
                        crate::nn::recipe::printable(&e.to_string())
                    ))
                })?;
        let value = parsed["v"].clone();
        let parts: Vec<&str> = key.split('.').collect();
        let (last, tables) = parts.split_last().expect("keys are not empty");
        let mut table = &mut doc;
        for part in tables {
            table = table
                .entry(part.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .ok_or_else(|| {
                    HebbError::Config(format!("--set {key}: {part} is not a table of the recipe"))
                })?;
        }
        table.insert(last.to_string(), value);
    }
    let edited = toml::to_string(&doc).map_err(|e| HebbError::Config(e.to_string()))?;
    SpikingRecipe::parse(&edited, &format!("{origin} with {}", point.name))
}

/// One gathered result.
#[derive(Clone, Debug, Serialize)]
pub struct SearchRow {
    pub point: SearchPoint,
    /// The rank that ran it.
    pub rank: usize,
    pub test_accuracy: f64,
    pub best_validation_accuracy: f64,
    pub best_at_samples: usize,
    pub wall_seconds: f64,
    pub out: PathBuf,
}

/// Values gathered per point.
const FIELDS: usize = 5;

/// Runs this rank's points (i ≡ rank mod size) into `out/<point name>` and gathers every
/// point's result on every rank.
pub fn run(
    ctx: &GpuContext,
    group: &dyn Collective,
    text: &str,
    origin: &str,
    points: &[SearchPoint],
    base: &SpikingOptions,
) -> Result<Vec<SearchRow>> {
    // Every point's recipe is checked on every rank first: a bad setting fails everywhere
    // before any run starts.
    let recipes = points
        .iter()
        .map(|p| recipe_for(text, origin, p))
        .collect::<Result<Vec<_>>>()?;
    let (rank, size) = (group.rank(), group.size());
    let mut values = vec![0.0f64; FIELDS * points.len()];
    for (i, (point, recipe)) in points.iter().zip(&recipes).enumerate() {
        if i % size != rank {
            continue;
        }
        let opts = SpikingOptions {
            out: base.out.join(&point.name),
            ..base.clone()
        };
        let m = task::run(ctx, recipe, &opts)?;
        values[FIELDS * i..FIELDS * (i + 1)].copy_from_slice(&[
            m.test_accuracy,
            m.best_validation_accuracy,
            m.best_at_samples as f64,
            m.wall_seconds,
            rank as f64,
        ]);
    }
    group.all_reduce_sum_f64(&mut values);
    Ok(points
        .iter()
        .enumerate()
        .map(|(i, point)| {
            let v = &values[FIELDS * i..FIELDS * (i + 1)];
            SearchRow {
                point: point.clone(),
                rank: v[4] as usize,
                test_accuracy: v[0],
                best_validation_accuracy: v[1],
                best_at_samples: v[2] as usize,
                wall_seconds: v[3],
                out: base.out.join(&point.name),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grid_crosses_seeds_and_settings() {
        let grid = vec![
            (
                "culture.inh_strength".to_string(),
                vec!["5".into(), "10".into()],
            ),
            ("task.rate_hz".to_string(), vec!["20.0".into()]),
        ];
        let p = points(&[1, 2], &grid);
        assert_eq!(p.len(), 4);
        assert_eq!(p[0].name, "seed1-inh_strength5-rate_hz20.0");
        assert_eq!(p[3].seed, 2);
        assert_eq!(p[3].settings[0].1, "10");
        assert_eq!(points(&[7], &[]).len(), 1);
    }

    #[test]
    fn settings_edit_the_recipe_and_bad_ones_name_the_key() {
        let (text, origin) = SpikingRecipe::bundled_text("spiking-mnist01-240n-bio").unwrap();
        let point = SearchPoint {
            name: "x".into(),
            seed: 9,
            settings: vec![("culture.inh_strength".into(), "5.0".into())],
        };
        let r = recipe_for(text, &origin, &point).unwrap();
        assert_eq!(r.seed, 9);
        assert_eq!(r.culture.inh_strength, 5.0);
        let bad = SearchPoint {
            settings: vec![("culture.inh_strength".into(), "\"loud\"".into())],
            ..point.clone()
        };
        let e = recipe_for(text, &origin, &bad).unwrap_err().to_string();
        assert!(e.contains("inh_strength"), "{e}");
        assert!(parse_setting("culture.x").is_err());
        assert!(parse_setting("=1").is_err());
        assert!(parse_setting("a.b=1,").is_err());
        assert_eq!(
            parse_setting("a.b=1, 2").unwrap(),
            ("a.b".to_string(), vec!["1".to_string(), "2".to_string()])
        );
    }
}
