"""The speed benchmark of every stage (``s2vt bench``) and its experiments; not imported by
the library.

- :mod:`s2vt.bench.harness`: :func:`~s2vt.bench.harness.run_benchmark`, the stage registry,
  :func:`~s2vt.bench.harness.to_json`;
- :mod:`s2vt.bench.config`: :class:`~s2vt.bench.config.BenchConfig` (what to measure, how big);
- :mod:`s2vt.bench.timing`: the shape of every figure (median of >= 3 timed repeats, with
  min and max) and alternating rounds;
- :mod:`s2vt.bench.ratios`: ratios of medians, the targets and their verdicts;
- :mod:`s2vt.bench.clips`: the generated clips every video stage reads;
- one module per stage: :mod:`~s2vt.bench.decode`, :mod:`~s2vt.bench.encoder`,
  :mod:`~s2vt.bench.extract`, :mod:`~s2vt.bench.naive` (the baseline extract is compared
  with), :mod:`~s2vt.bench.projection` (MSR-VTT and VATEX extract times),
  :mod:`~s2vt.bench.train`, :mod:`~s2vt.bench.caption`, :mod:`~s2vt.bench.caption_cli`,
  :mod:`~s2vt.bench.score`, :mod:`~s2vt.bench.memory`;
- :mod:`s2vt.bench.summary`: the lines the CLI prints beside the JSON;
- :mod:`s2vt.bench.experiments`: accuracy experiments that are not speed measures
  (``s2vt bench --experiment precision``).

Nothing is imported here, so importing one module does not import the others.
"""
