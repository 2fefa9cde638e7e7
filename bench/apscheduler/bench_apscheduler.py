#!/usr/bin/env python3
"""The spec's reference design, for comparison: APScheduler 3.11 with a SQLAlchemy job store on
PostgreSQL and a pool of threads, N every-minute no-op jobs. Measures lateness (the moment the
job's execution event fires minus its scheduled run time) for each minute boundary.

Run by `bench-scheduler apscheduler` (which creates and drops the database); prints one JSON
object on stdout.
"""
import argparse
import datetime as dt
import json
import threading
import time

from apscheduler.events import (EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MAX_INSTANCES,
                                EVENT_JOB_MISSED)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger


def noop():
    pass


def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    k = (len(xs) - 1) * p
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True, help="SQLAlchemy URL (postgresql+psycopg2://...)")
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--threads", type=int, default=10)
    ap.add_argument("--minutes", type=int, default=2, help="minute boundaries measured")
    ap.add_argument("--timeout", type=float, default=600)
    a = ap.parse_args()
    started = time.monotonic()

    lock = threading.Lock()
    executed = []  # (scheduled_run_time epoch, lateness s)
    counts = {"missed": 0, "error": 0, "max_instances": 0}

    def listener(ev):
        now = time.time()
        with lock:
            if ev.code == EVENT_JOB_EXECUTED:
                executed.append((ev.scheduled_run_time.timestamp(), now - ev.scheduled_run_time.timestamp()))
            elif ev.code == EVENT_JOB_MISSED:
                counts["missed"] += 1
            elif ev.code == EVENT_JOB_ERROR:
                counts["error"] += 1
            elif ev.code == EVENT_JOB_MAX_INSTANCES:
                counts["max_instances"] += 1

    sched = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(url=a.url)},
        executors={"default": ThreadPoolExecutor(a.threads)},
        job_defaults={"coalesce": True, "misfire_grace_time": 3600, "max_instances": 1},
        timezone=dt.timezone.utc,
    )
    sched.add_listener(listener, EVENT_JOB_EXECUTED | EVENT_JOB_MISSED | EVENT_JOB_ERROR | EVENT_JOB_MAX_INSTANCES)
    sched.start(paused=True)
    t_add = time.monotonic()
    for i in range(a.jobs):
        sched.add_job(noop, CronTrigger(minute="*", timezone=dt.timezone.utc), id=f"job-{i}",
                      replace_existing=True)
    add_s = time.monotonic() - t_add
    # Measure the minute boundaries that come after the scheduler is resumed.
    now = time.time()
    first = (int(now // 60) + 1) * 60
    boundaries = [first + 60 * k for k in range(a.minutes)]
    sched.resume()
    deadline = time.monotonic() + a.timeout
    # Wait until every job ran for every measured boundary (or the last boundary is a minute old).
    while time.monotonic() < deadline:
        time.sleep(1)
        with lock:
            done = sum(1 for s, _ in executed if s in boundaries)
        if done >= a.jobs * a.minutes or time.time() > boundaries[-1] + 59:
            break
    sched.shutdown(wait=False)
    out = {"system": "APScheduler 3.11 + SQLAlchemyJobStore (PostgreSQL)", "jobs": a.jobs,
           "threads": a.threads, "add_jobs_s": add_s, "per_minute": [], **counts}
    with lock:
        for b in boundaries:
            lat = [l for s, l in executed if s == b]
            out["per_minute"].append({
                "boundary": dt.datetime.fromtimestamp(b, dt.timezone.utc).isoformat(),
                "executed": len(lat),
                "lateness_p50_s": pct(lat, 0.5),
                "lateness_p99_s": pct(lat, 0.99),
                "lateness_max_s": max(lat) if lat else None,
            })
        lat = [l for s, l in executed if s in boundaries]
    out["executed"] = len(lat)
    out["lateness_p50_s"] = pct(lat, 0.5)
    out["lateness_p99_s"] = pct(lat, 0.99)
    out["lateness_max_s"] = max(lat) if lat else None
    out["wall_s"] = time.monotonic() - started
    print(json.dumps(out))


if __name__ == "__main__":
    main()
