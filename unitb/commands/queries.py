"""``unitb query`` and ``unitb report``: questions and a comparison page over any runs.

    unitb query LOGDIR "SELECT …" [--format table|csv|json|parquet] [-o OUT]
    unitb report LOGDIR [--out report.html] [--tags GLOB …]

The work (the index, DuckDB, plotly) is imported when one of them runs, not when ``unitb`` starts.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import sys
from typing import Any, List

from unitb.commands import arguments

TABLE_WIDTH = 40  # characters a cell of the printed table shows at most


def add_parsers(sub) -> None:
    query = arguments.command(sub, "query", help="ask SQL (DuckDB) of every run below a folder: views runs, scalars "
                              "and hparams")
    query.add_argument("logdir", help="a folder of runs (or a URL: s3://…)")
    query.add_argument("sql", help='a SELECT over runs, scalars and hparams, such as "SELECT run, status FROM runs"; '
                       "- reads it from standard input")
    query.add_argument("--format", choices=("table", "csv", "json", "parquet"), default="table",
                       help="how to print the answer (default: table); parquet needs -o")
    query.add_argument("-o", "--output", help="file to write (default: stdout)")
    query.set_defaults(func=cmd_query)
    report = arguments.command(sub, "report", help="one offline HTML page comparing every run below a folder")
    report.add_argument("logdir", help="a folder of runs (or a URL: s3://…)")
    report.add_argument("--out", default="report.html", help="the page to write (default: report.html)")
    report.add_argument("--tags", action="append", metavar="GLOB",
                        help="the curves to draw (repeat; default: train/loss, val/*)")
    report.set_defaults(func=cmd_report)


def cmd_query(args: argparse.Namespace) -> int:
    from unitb.query.sql import QueryError, run_query

    if args.format == "parquet" and not args.output:
        print("unitb query: --format parquet writes a file: give it with -o OUT.parquet", file=sys.stderr)
        return 2
    missing = arguments.not_a_folder(args.logdir, urls=True, who="unitb query")
    if missing:
        print(missing, file=sys.stderr)
        return 2
    sql = sys.stdin.read() if args.sql == "-" else args.sql
    try:
        answer = run_query(args.logdir, sql)
    except QueryError as exc:
        print(f"unitb query: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a store that does not answer, missing credentials, an unreadable folder
        print(f"unitb query: cannot read {args.logdir} ({type(exc).__name__}: {exc})", file=sys.stderr)
        return 2
    if args.format == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(answer, args.output, compression="zstd")
        print(f"unitb: {answer.num_rows} row(s) in {args.output}", file=sys.stderr)
        return 0
    text = {"table": table_text, "csv": csv_text, "json": json_text}[args.format](answer)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(text)
    else:
        sys.stdout.write(text)
    return 0


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    text = str(value)
    return text if len(text) <= TABLE_WIDTH else text[: TABLE_WIDTH - 1] + "…"


def table_text(answer: Any) -> str:
    """The answer as aligned columns, a header first; numbers right-aligned."""
    names = answer.column_names
    rows = [[_cell(value) for value in row.values()] for row in answer.to_pylist()]
    widths = [max([len(name)] + [len(row[i]) for row in rows]) for i, name in enumerate(names)]
    numeric = [str(answer.schema.field(i).type).startswith(("int", "uint", "double", "float", "decimal"))
               for i in range(len(names))]

    def line(cells: List[str]) -> str:
        return "  ".join(cell.rjust(width) if right else cell.ljust(width)
                         for cell, width, right in zip(cells, widths, numeric)).rstrip()

    out = [line(list(names))] + [line(row) for row in rows]
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(out) + "\n"


def csv_text(answer: Any) -> str:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(answer.column_names)
    for row in answer.to_pylist():
        writer.writerow(["" if v is None else (v.isoformat() if isinstance(v, datetime.datetime) else v)
                         for v in row.values()])
    return buffer.getvalue()


def json_text(answer: Any) -> str:
    def plain(value: Any) -> Any:
        if isinstance(value, datetime.datetime):
            return value.isoformat()
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value

    rows = [{key: plain(value) for key, value in row.items()} for row in answer.to_pylist()]
    return json.dumps(rows, indent=1, default=str) + "\n"


def cmd_report(args: argparse.Namespace) -> int:
    from unitb.query.report import write_report

    missing = arguments.not_a_folder(args.logdir, urls=True, who="unitb report")
    if missing:
        print(missing, file=sys.stderr)
        return 2

    try:
        count = write_report(args.logdir, args.out, tags=args.tags)
    except Exception as exc:  # a store that does not answer, missing credentials, an unreadable folder
        print(f"unitb report: cannot read {args.logdir} ({type(exc).__name__}: {exc})", file=sys.stderr)
        return 2
    if not count:
        print(f"unitb report: no runs (event files) below {args.logdir}", file=sys.stderr)
        return 1
    print(f"unitb: {count} run(s) compared in {args.out}", file=sys.stderr)
    return 0
