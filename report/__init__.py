"""The technical report: ``python -m report.build`` turns the packed datasets, their manifests and rejects, the
stage benchmark JSON and the generators' diversity into ``report/REPORT.md``, ``report/numbers.json`` and
``report/figures/*.png``. ``stats`` computes, ``figures`` draws, ``tables``, ``render`` and ``samples`` write
text (``fmt`` formats), ``build`` is the CLI; the prose is ``template.md``."""
