"""The command line's contract with the job runners: JSON on stdout, JSON lines on stderr, stable error codes."""

import json

from conftest import ROWS, last_error, run_cli, train_args


def test_train_prints_the_result_and_reports_progress(base_csv, tmp_path):
    result = run_cli(*train_args(base_csv, tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["manifest"] == str(tmp_path / "out" / "manifest.json")
    assert len(summary["sha256"]) == 64
    events = [json.loads(line) for line in result.stderr.splitlines()]
    assert {event["event"] for event in events} == {"progress"}
    assert [e["stage"] for e in events][0] == "load" and events[-1]["stage"] == "write"


def test_offsets_can_come_from_a_file(base_csv, tmp_path):
    offsets = tmp_path / "offsets.json"
    offsets.write_text('{"transactions": [{"partition": 3, "from": 5, "to": 9}]}')
    args = train_args(base_csv, tmp_path / "out")
    at = args.index("--offsets-json")
    args[at : at + 2] = ["--offsets", str(offsets)]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["offsets"] == {"transactions": [{"partition": 3, "from": 5, "to": 9}]}


def test_a_csv_without_a_feature_column_fails_with_bad_data(base_csv, tmp_path):
    bad = tmp_path / "bad.csv"
    lines = base_csv.read_text().splitlines()
    bad.write_text("\n".join(line.rsplit(",", 2)[0] + "," + line.rsplit(",", 1)[1] for line in lines) + "\n")
    result = run_cli(*train_args(bad, tmp_path / "out"))
    assert result.returncode == 2
    error = last_error(result.stderr)
    assert error["event"] == "error" and error["code"] == "bad-data"
    assert "missing prev_amount" in error["message"]
    assert not (tmp_path / "out").exists()


def test_a_bad_cell_is_reported_with_its_row_and_column(base_csv, tmp_path):
    bad = tmp_path / "bad.csv"
    lines = base_csv.read_text().splitlines()
    lines[7] = lines[7].rsplit(",", 1)[0] + ",yes"
    lines[3] = lines[3].replace(lines[3].split(",")[2], "nan", 1)
    bad.write_text("\n".join(lines) + "\n")
    result = run_cli(*train_args(bad, tmp_path / "out"))
    assert result.returncode == 2
    assert last_error(result.stderr) == {
        "event": "error",
        "code": "bad-data",
        "message": "row 4, column amount: 'nan' is not a finite number",
    }


def test_a_run_never_overwrites_a_trained_model(base_csv, tmp_path):
    assert run_cli(*train_args(base_csv, tmp_path / "out")).returncode == 0
    again = run_cli(*train_args(base_csv, tmp_path / "out"))
    assert again.returncode == 2
    assert last_error(again.stderr)["code"] == "output-exists"


def test_malformed_offsets_fail_with_bad_argument(base_csv, tmp_path):
    args = train_args(base_csv, tmp_path / "out")
    args[args.index("--offsets-json") + 1] = '{"transactions": [{"partition": 0, "from": 9, "to": 2}]}'
    result = run_cli(*args)
    assert result.returncode == 2
    assert last_error(result.stderr)["code"] == "bad-argument"


def test_evaluate_prints_the_auc_of_a_model_on_a_data_set(base_csv, tmp_path):
    assert run_cli(*train_args(base_csv, tmp_path / "out")).returncode == 0
    result = run_cli("evaluate", "--model", str(tmp_path / "out" / "model.onnx"), "--data", str(base_csv))
    assert result.returncode == 0, result.stderr
    evaluation = json.loads(result.stdout)
    assert 0.8 < evaluation["auc"] <= 1.0
    assert evaluation["rows"] == ROWS
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert evaluation["model_sha256"] == manifest["artifact"]["sha256"]
