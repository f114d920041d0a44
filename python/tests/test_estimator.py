"""The estimator: the same fit as the command, round trips of model.json both ways, every kind
of table in, explanations, the report, notebook behaviour and bad input."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from segmix import Explanation, SegMix, SegmixWarning

from conftest import REPO, ROLES, run_cli


def quiet(**kw):
    return SegMix(device="cpu", **kw)


@pytest.fixture(scope="module")
def fitted(ads):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SegmixWarning)
        return quiet(k=range(2, 5), **ROLES).fit(ads)


def test_python_fit_is_the_command_fit(ads, cli, tmp_path, fitted):
    run_cli(cli, "fit", REPO / "examples" / "game_ads.csv", "--cat", "Country,Channel,Creative_Type", "--num", "CTR,CVR,ROAS", "--k", "2..4", "--device", "cpu",
            "--out", tmp_path / "cli")
    model = json.loads((tmp_path / "cli" / "model.json").read_text())
    assert fitted.k_ == model["fit"]["k"]
    assert fitted.loglik_ == pytest.approx(model["fit"]["loglik"], rel=1e-12)
    assert fitted.bic_ == pytest.approx(model["fit"]["criteria"]["bic"], rel=1e-12)
    cli_rows = pd.read_csv(tmp_path / "cli" / "assignments.csv")
    np.testing.assert_array_equal(fitted.labels_ + 1, cli_rows["class"].to_numpy())
    post = cli_rows[[f"post_{c}" for c in range(1, fitted.k_ + 1)]].to_numpy()
    np.testing.assert_allclose(fitted.posteriors_, post, rtol=0, atol=1e-12)
    # Fitted attributes say the same as model.json, in scikit-learn's shapes.
    assert fitted.weights_.shape == (fitted.k_,) and fitted.weights_.sum() == pytest.approx(1.0)
    assert fitted.means_.shape == (fitted.k_, 3) and fitted.covariances_.shape == (fitted.k_, 3, 3)
    assert list(fitted.categorical_probabilities_) == ROLES["cat"]
    assert fitted.categorical_probabilities_["Country"].sum(axis=1).to_numpy() == pytest.approx(1.0)
    assert set(fitted.selection_["k"]) == {2, 3, 4} and "bic" in fitted.selection_
    assert list(fitted.criteria_.index) == [2, 3, 4] and fitted.degenerate_ == {2: 0, 3: 0, 4: 0}
    assert fitted.n_iter_ > 0 and fitted.converged_
    assert list(fitted.feature_names_in_) == ROLES["cat"] + ROLES["num"] and fitted.n_features_in_ == 6


def test_a_model_saved_in_python_predicts_from_the_command(ads, cli, tmp_path, fitted):
    fitted.save(tmp_path / "model.json")
    new = ads.drop(columns=["CTR", "CVR", "ROAS"]).head(200)  # ad copy not launched: no metrics
    new.to_parquet(tmp_path / "new.parquet")
    run_cli(cli, "predict", tmp_path / "model.json", tmp_path / "new.parquet", "--device", "cpu",
            "--out", tmp_path / "pred.parquet")
    theirs = pd.read_parquet(tmp_path / "pred.parquet")
    ours = fitted.predict_proba(new)
    np.testing.assert_allclose(ours, theirs[[f"post_{c}" for c in range(1, fitted.k_ + 1)]].to_numpy(), atol=1e-12)
    np.testing.assert_array_equal(fitted.predict(new) + 1, theirs["class"].to_numpy())
    metrics = fitted.predict_metrics(new)
    np.testing.assert_allclose(metrics["expected_ROAS"], theirs["expected_ROAS"], rtol=1e-12)


def test_a_model_fitted_by_the_command_predicts_in_python(ads, cli, tmp_path):
    data = tmp_path / "ads.csv"
    ads.to_csv(data, index=False)
    run_cli(cli, "fit", data, "--cat", "Country,Channel", "--num", "CTR,ROAS", "--log", "ROAS", "--k", "3",
            "--covariance", "diag", "--device", "cpu", "--out", tmp_path / "fit")
    est = SegMix.load(tmp_path / "fit" / "model.json")
    assert est.k_ == 3 and est.covariance == "diag" and est.log == ["ROAS"] and est.covariances_.shape == (3, 2)
    rows = pd.read_csv(tmp_path / "fit" / "assignments.csv")
    post = est.predict_proba(ads)
    np.testing.assert_allclose(post, rows[["post_1", "post_2", "post_3"]].to_numpy(), atol=1e-12)
    np.testing.assert_allclose(est.score_samples(ads), rows["loglik"].to_numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match="fitted on, and this model was loaded"):
        est.explain()
    # A parameter of the loaded estimator refits the same model.
    refit = clone(est).fit(ads)
    assert refit.loglik_ == pytest.approx(est.loglik_, rel=1e-12)
    with pytest.raises(ValueError, match="not a segmix model"):
        (tmp_path / "other.json").write_text('{"format": "something"}')
        SegMix.load(tmp_path / "other.json")


def test_every_kind_of_table_gives_the_same_fit(ads):
    pytest.importorskip("polars")
    import polars as pl

    frame = ads[ROLES["cat"] + ROLES["num"]].head(600).copy()
    # Missing values spelled every way pandas spells them.
    frame.loc[3, "Country"] = None
    frame.loc[4, "Channel"] = np.nan
    frame.loc[5, "CTR"] = np.nan
    frame["Creative_Type"] = frame["Creative_Type"].astype("category")
    frame["CVR"] = frame["CVR"].astype("Float64")
    frame.loc[6, "CVR"] = pd.NA
    est = quiet(k=3, **ROLES)
    base = est.fit(frame).loglik_
    table = pa.Table.from_pandas(frame, preserve_index=False)
    for X in (table, pl.from_arrow(table), table.to_batches()[0], pa.RecordBatchReader.from_batches(table.schema, table.to_batches())):
        assert quiet(k=3, **ROLES).fit(X).loglik_ == pytest.approx(base, rel=1e-12), type(X)
    # The roles may come with fit (and override none given to the constructor).
    assert quiet(k=3).fit(frame, **ROLES).loglik_ == pytest.approx(base, rel=1e-12)


def test_numeric_input_without_roles(ads):
    X = ads[["CTR", "CVR", "ROAS"]].to_numpy()
    est = quiet(k=3).fit(X)
    assert est.num_ == ["x0", "x1", "x2"] and not est.cat_
    frame_fit = quiet(k=3).fit(ads[["CTR", "CVR", "ROAS"]])
    assert frame_fit.loglik_ == pytest.approx(est.loglik_, rel=1e-12)
    assert list(frame_fit.feature_names_in_) == ["CTR", "CVR", "ROAS"]
    # A DataFrame's dtypes say the roles: categories are categorical, numbers metrics.
    mixed = ads[["Country", "CTR"]].astype({"Country": "category"})
    est2 = quiet(k=2).fit(mixed)
    assert est2.cat_ == ["Country"] and est2.num_ == ["CTR"]
    with pytest.raises(TypeError, match="column 'Ad_Text' holds .*text='Ad_Text'"):
        quiet(k=2).fit(ads[["Ad_Text", "CTR"]])
    # In a pipeline, cloned, with parameters set.
    pipe = make_pipeline(StandardScaler(), quiet(k=range(2, 4)))
    labels = pipe.fit_predict(X)
    assert labels.shape == (len(X),) and set(labels) <= {0, 1, 2}
    c = clone(quiet(k=range(2, 4), cat=["a"]))
    assert c.get_params()["k"] == range(2, 4) and c.set_params(n_init=2).n_init == 2


def test_explanations_and_the_report(fitted, tmp_path):
    e = fitted.explain(prototypes=3)
    assert isinstance(e, Explanation) and len(e) == fitted.k_
    c = e[0]
    assert c.index == 0 and c.number == 1 and c.size > 0
    assert set(c.categorical) == set(ROLES["cat"])
    assert list(c.categorical["Country"].columns) == ["level", "share", "population", "lift"]
    assert list(c.metrics.index) == ROLES["num"] and "z" in c.metrics
    assert "segment" in c.prompt.lower() and "JSON" in c.prompt
    assert set(e.power["variable"]) >= set(ROLES["cat"] + ROLES["num"])
    assert len(e.hierarchy) == fitted.k_ - 1
    assert e.summary().shape[0] == fitted.k_
    assert json.loads(e.to_json())["format"] == "segmix-clusters"
    html = fitted.report(tmp_path / "report")
    for name in ("model.json", "assignments.csv", "selection.csv", "clusters.json", "report.html", "report.md"):
        assert (tmp_path / "report" / name).exists(), name
    assert html.endswith("report.html")
    assert json.loads((tmp_path / "report" / "model.json").read_text())["fit"]["loglik"] == fitted.loglik_


def test_text_fits_and_predicts_with_the_embedder(ads, cli, tmp_path):
    sample = ads.head(300)
    est = quiet(k=2, text="Ad_Text", num=["CTR"], pca_dims=8, progress=None).fit(sample)
    assert est.text_ == "Ad_Text" and len(est.continuous_) == 9
    words = {w for c in est.explain() for w in c.keywords["word"]}
    assert words, "the decoder found keywords"
    est.save(tmp_path / "m.json")
    sample.to_csv(tmp_path / "s.csv", index=False)
    run_cli(cli, "predict", tmp_path / "m.json", tmp_path / "s.csv", "--device", "cpu", "--out", tmp_path / "p.csv")
    theirs = pd.read_csv(tmp_path / "p.csv")
    np.testing.assert_allclose(est.predict_proba(sample), theirs[["post_1", "post_2"]].to_numpy(), atol=1e-9)
    # Precomputed vectors instead of the embedder.
    rng = np.random.default_rng(0)
    E = rng.normal(size=(300, 16)) + np.repeat(np.eye(2, 16) * 4, 150, axis=0)
    est2 = quiet(k=2, text="Ad_Text", pca_dims=4).fit(sample, embeddings=E)
    assert est2.predict(sample, embeddings=E).tolist() == est2.labels_.tolist()


def test_bad_input_names_the_column(ads):
    with pytest.raises(ValueError, match='no column "Nope"'):
        quiet(k=2, num=["Nope"]).fit(ads)
    bad = ads[["Country", "CTR"]].head(50).copy()
    bad["CTR"] = bad["CTR"].astype(str)
    bad.loc[7, "CTR"] = "12%"
    with pytest.raises(ValueError, match=r'row 7, column "CTR": "12%" is not a finite number'):
        quiet(k=2, num=["CTR"]).fit(bad)
    nested = pd.DataFrame({"v": [[1, 2]] * 10, "x": np.arange(10.0)})
    with pytest.raises(TypeError, match='column "v" holds List'):
        quiet(k=2, num=["v", "x"]).fit(nested)
    mixed = pd.DataFrame({"m": [1, "a", 2.5] * 5})
    with pytest.raises(TypeError, match="column 'm'"):
        quiet(k=2, cat=["m"]).fit(mixed)
    inf = ads[["CTR"]].head(20).copy()
    inf.loc[3, "CTR"] = np.inf
    with pytest.raises(ValueError, match=r'row 3, column "CTR"'):
        quiet(k=2, num=["CTR"]).fit(inf)
    with pytest.raises(ValueError, match="covariance=\"bogus\""):
        quiet(k=2, num=["CTR"], covariance="bogus").fit(ads)
    with pytest.raises(ValueError, match="k=range"):
        quiet(k=range(2, 9, 2)).fit(ads[["CTR"]])
    with pytest.raises(TypeError, match="name columns"):
        quiet(num=["CTR"]).fit(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="larger than the number of rows"):
        quiet(k=40, num=["CTR"]).fit(ads.head(10))
    # Predicting before fitting.
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        quiet().predict(ads)


def test_warnings_and_progress(ads):
    events = []
    with pytest.warns(SegmixWarning, match="of the --k range"):
        quiet(k=range(2, 4), num=["CTR"], progress=lambda e, info: events.append((e, info))).fit(ads)
    kinds = {e for e, _ in events}
    assert {"sweep", "run", "iteration", "run_finished"} <= kinds
    assert sum(e == "run_finished" for e, _ in events) == dict(events)["sweep"]["total"]

    def stop(event, info):
        if event == "iteration":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        quiet(k=range(2, 4), num=["CTR"], progress=stop).fit(ads)


def test_ctrl_c_interrupts_a_long_fit(tmp_path):
    """SIGINT to a process fitting a large table ends the fit with KeyboardInterrupt, promptly."""
    script = tmp_path / "long.py"
    script.write_text(textwrap.dedent("""
        import sys, time
        import numpy as np
        from segmix import SegMix
        X = np.random.default_rng(0).normal(size=(400_000, 6))
        print("fitting", flush=True)
        t = time.time()
        try:
            SegMix(k=range(2, 30), device="cpu", n_init=20).fit(X)
            print("finished", flush=True)
        except KeyboardInterrupt:
            print(f"interrupted after {time.time() - t:.2f}s", flush=True)
    """))
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "fitting"
    import time

    time.sleep(2.0)
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=60)
    assert out.startswith("interrupted after"), out
    seconds = float(out.split()[2].rstrip("s"))
    assert seconds < 2.0 + 10.0, out


def test_pickle_keeps_the_model(fitted, ads):
    import pickle

    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(again.predict(ads), fitted.predict(ads))
    with pytest.raises(ValueError, match="explanations need the rows"):
        again.explain()


def test_parquet_files_read_only_the_role_columns(ads, tmp_path):
    path = tmp_path / "ads.parquet"
    pq.write_table(pa.Table.from_pandas(ads), path, row_group_size=500)
    est = quiet(k=3, **ROLES).fit(pq.read_table(path, columns=ROLES["cat"] + ROLES["num"]))
    assert est.loglik_ == pytest.approx(quiet(k=3, **ROLES).fit(ads).loglik_, rel=1e-12)


def test_an_interrupt_stops_the_embedding_after_the_batch_in_flight(ads):
    seen = []

    def stop(event, info):
        if event == "embed":
            seen.append(info["done"])
            if info["done"] > 0:
                raise KeyboardInterrupt

    texts = ads.drop_duplicates("Ad_Text").head(400)
    with pytest.raises(KeyboardInterrupt):
        quiet(k=2, text="Ad_Text", cache=False, progress=stop).fit(texts)
    assert seen[0] == 0 and 0 < seen[-1] < 400, seen


def test_the_gil_is_released_while_fitting():
    """Another Python thread keeps running while a fit runs in Rust."""
    import threading
    import time

    X = np.random.default_rng(1).normal(size=(200_000, 4))
    done = threading.Event()
    took = []

    def work():
        t = time.perf_counter()
        quiet(k=range(2, 6)).fit(X)
        took.append(time.perf_counter() - t)
        done.set()

    thread = threading.Thread(target=work)
    thread.start()
    ticks = [time.perf_counter()]
    while not done.is_set():
        time.sleep(0.01)
        ticks.append(time.perf_counter())
    thread.join()
    gaps = np.diff(ticks)
    assert took[0] > 1.0, took
    assert gaps.max() < 0.5, f"the main thread stalled {gaps.max():.2f}s during a {took[0]:.1f}s fit"


def test_grid_search_picks_by_held_out_likelihood(ads):
    from sklearn.model_selection import GridSearchCV

    X = ads[["CTR", "CVR", "ROAS"]].to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SegmixWarning)
        search = GridSearchCV(quiet(k=range(2, 5)), {"covariance": ["full", "spherical"]}, cv=2).fit(X)
    assert search.best_params_ == {"covariance": "full"}
    assert search.best_estimator_.k_ in (2, 3, 4)


def test_headless_gpu_probes_are_quiet(tmp_path):
    """Without a desktop session, probing the GPU (device="auto") prints nothing on stderr."""
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_RUNTIME_DIR", "NODEVICE_SELECT")}
    code = "import numpy as np; from segmix import SegMix; SegMix(k=2).fit(np.random.default_rng(0).normal(size=(200, 2)))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "XDG_RUNTIME_DIR" not in r.stderr, r.stderr
