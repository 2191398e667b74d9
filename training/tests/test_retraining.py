"""Why this model: after amounts shift and a new fraud pattern appears, retraining on the new data recovers."""

from conftest import run_cli, train_args


def test_a_model_retrained_on_drifted_data_beats_the_old_one_on_it(base_csv, tmp_path):
    drifted = tmp_path / "drifted.csv"
    fresh = tmp_path / "fresh.csv"
    assert run_cli("synth", "--rows", "3000", "--seed", "2", "--drift", "--out", str(drifted)).returncode == 0
    assert run_cli("synth", "--rows", "5000", "--seed", "3", "--drift", "--out", str(fresh)).returncode == 0
    assert run_cli(*train_args(base_csv, tmp_path / "old")).returncode == 0
    assert run_cli(*train_args(drifted, tmp_path / "new", version="v2")).returncode == 0

    def auc(model: str) -> float:
        import json

        result = run_cli("evaluate", "--model", str(tmp_path / model / "model.onnx"), "--data", str(fresh))
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)["auc"]

    old, new = auc("old"), auc("new")
    assert new > old + 0.03, (old, new)
