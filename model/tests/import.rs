//! Golden test against PyTorch: a tiny nanochat checkpoint written by `torch.save` (with
//! torch.compile's `_orig_mod.` prefix and a bf16 `wte`, as nanochat writes them on CUDA) is
//! imported and must reproduce the logits PyTorch computed. Fixtures come from
//! `bench/train/nanochat_ref.py fixture` (see model/tests/fixtures/README.md).

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use burn::tensor::{Int, Tensor, TensorData};
use njp_model::weights::{
    import_nanochat, read_nanochat_pt, read_safetensors, save_model, state_dict,
};
use njp_model::{Gpt, ModelOptions};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

#[test]
fn nanochat_pt_import_reproduces_pytorch_logits() {
    let pt = fixtures().join("model_000007.pt");
    let model =
        import_nanochat::<Flex>(&pt, None, ModelOptions::default(), &Default::default()).unwrap();
    let cfg = model.config();
    assert_eq!(
        (
            cfg.n_layer,
            cfg.n_head,
            cfg.n_kv_head,
            cfg.n_embd,
            cfg.vocab_size
        ),
        (2, 2, 1, 32, 100)
    );

    let expected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("expected_logits.json")).unwrap(),
    )
    .unwrap();
    let ids: Vec<i64> = expected["ids"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let want: Vec<f32> = expected["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    let idx = Tensor::<Flex, 2, Int>::from_data(
        TensorData::new(ids.clone(), [1, ids.len()]),
        &Default::default(),
    );
    let got = model.forward(idx).into_data().to_vec::<f32>().unwrap();
    assert_eq!(got.len(), want.len());
    let mut worst = 0f32;
    for (g, w) in got.iter().zip(&want) {
        worst = worst.max((g - w).abs() / w.abs().max(1.0));
    }
    // The fixture rounds to 1e-6; rotary tables are bf16 on both sides.
    assert!(worst < 1e-4, "max relative logit error {worst}");
}

#[test]
fn export_uses_nanochat_keys_and_shapes() {
    let pt = fixtures().join("model_000007.pt");
    let torch = read_nanochat_pt(&pt).unwrap();
    let model =
        import_nanochat::<Flex>(&pt, None, ModelOptions::default(), &Default::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model.safetensors");
    save_model(&model, &out).unwrap();
    let (exported, meta) = read_safetensors(&out).unwrap();
    // Same keys (prefix stripped), same PyTorch shapes, same values (wte widened from bf16).
    assert_eq!(
        exported.keys().collect::<Vec<_>>(),
        torch.keys().collect::<Vec<_>>()
    );
    for (k, t) in &torch {
        assert_eq!(exported[k].shape, t.shape, "{k}");
        assert_eq!(exported[k].data, t.data, "{k}");
    }
    assert!(meta["model_config"].contains("\"n_kv_head\":1"));
    // And back: a model loaded from the export equals the imported one.
    let again = Gpt::<Flex>::init(
        &model.config(),
        ModelOptions::default(),
        9,
        &Default::default(),
    )
    .unwrap();
    let again = njp_model::weights::load_model(again, &out).unwrap();
    assert_eq!(state_dict(&again), state_dict(&model));
}

#[test]
fn import_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("model_000001.pt");
    std::fs::write(&bogus, b"not a zip").unwrap();
    std::fs::write(dir.path().join("meta_000001.json"), r#"{"model_config": {"sequence_len": 8, "vocab_size": 10, "n_layer": 1, "n_head": 1, "n_kv_head": 1, "n_embd": 8}}"#).unwrap();
    let err = import_nanochat::<Flex>(&bogus, None, ModelOptions::default(), &Default::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("model_000001.pt"), "{err}");
    let err = import_nanochat::<Flex>(
        &dir.path().join("weights.pt"),
        None,
        ModelOptions::default(),
        &Default::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("meta_XXXXXX.json"), "{err}");
}
