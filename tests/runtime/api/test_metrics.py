"""``/metrics``: Prometheus text, scraped with an admin token only."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.runtime.api.conftest import Api


def _scrape(api: Api, who: str | None) -> tuple[int, str]:
    headers = {} if who is None else {"Authorization": f"Bearer {api.tokens[who]}"}
    response = api.server.client.get("/metrics", headers=headers)
    return response.status_code, response.text


def test_metrics_answer_only_an_admin(api: Api) -> None:
    assert _scrape(api, None)[0] == 401
    assert _scrape(api, "ann")[0] == 403
    assert _scrape(api, "vic")[0] == 403


def test_a_scrape_counts_runs_durations_calls_clicks_and_the_queue(api: Api) -> None:
    api.say("shop", "/start", user=901)
    link = api.call("ann", "POST", "/bots/shop/links", json={"command": "click", "user_id": 9})
    assert api.server.client.get(link.json()["url"]).status_code == 200
    status, text = _scrape(api, "root")
    assert status == 200
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    runs = samples[
        ("botbox_runs_total", (("bot", "shop"), ("command", "/start"), ("status", "ok")))
    ]
    assert runs >= 1
    assert samples[("botbox_run_duration_seconds_count", (("bot", "shop"),))] >= runs
    assert (
        samples[("botbox_telegram_calls_total", (("method", "sendMessage"), ("outcome", "ok")))]
        >= 1
    )
    assert samples[("botbox_link_clicks_total", (("status", "200"),))] >= 1
    assert ("botbox_queue_depth", (("bot", "shop"),)) in samples
    assert ("botbox_pool", (("what", "workers"),)) in samples
    # The shop's /start wrote a property: its bytes are counted; the pool's restarts and
    # waiting runs are there (none so far), and no queue item is due (no age to report).
    assert samples[("botbox_properties_bytes", (("bot", "shop"),))] > 0
    assert samples[("botbox_pool_worker_restarts_total", ())] == 0
    assert samples[("botbox_pool_waiting_runs", ())] == 0
    assert not any(name == "botbox_queue_age_seconds" for name, _ in samples)
