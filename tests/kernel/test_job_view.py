"""The notebook's view of a job, without a server: the bundle, the log as a terminal shows it (only the
blocks that changed are sent again), rich outputs made safe and shown one widget each."""
import json

from jupyter_jobs.kernel.displays import DisplayStream, adds_to_log, clean_html, safe_output
from jupyter_jobs.kernel.terminal import TerminalText
from jupyter_jobs.kernel.view import JOB_MIME, JobView
from jupyter_jobs.kernel.widgets import JobWidget

JOB = {"id": 12, "name": "train", "status": "Running", "message": "", "instance_type": "cpu"}


def test_one_bundle_holds_ours_the_widget_view_and_text():
    widget = JobWidget(None, JOB)
    bundle = JobView(JOB, ["model", "loss"], widget)._repr_mimebundle_()
    assert bundle[JOB_MIME] == {"id": 12, "name": "train", "out": ["model", "loss"]}
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == widget.model_id
    assert bundle["text/plain"] == ("Job #12 'train' — %job attach 12 shows it; "
                                    "%job fetch 12 loads its --out values (model, loss)")
    assert "JobWidget(" not in bundle["text/plain"]
    widget.close()  # a closed widget: the bundle still says what the job was
    assert set(JobView(JOB, [], widget)._repr_mimebundle_()) == {JOB_MIME, "text/plain"}


def test_carriage_returns_rewrite_the_line_as_a_terminal_does():
    term = TerminalText()
    for chunk in [b"epoch 1\n", b"  0%|    | 0/3\r", b" 33%|#   | 1/3\r", b" 67%|##  | 2/3\r100%|####|",
                  b" 3/3\n", b"\x1b[32mdone\x1b[0m caf\xc3", b"\xa9\n", b"abcdef\rXY\x1b[K\n", b"ab\bC\n",
                  b"50%\x1b[2K\rnext", b"\x1b[", b"1mline\x1b[0m\n"]:
        term.feed(chunk)
    assert term.lines == ["epoch 1", "100%|####| 3/3", "done café", "XY", "aC", "nextline", ""]


def test_the_log_sends_again_only_the_blocks_that_changed():
    widget = JobWidget(None, JOB, log_lines=200)
    widget.BLOCK_LINES = 10
    assert widget.show_all.layout.display == "none"  # nothing to show more of
    # The box around the blocks scrolls (the blocks grow), anchored at the end: it follows the end while the
    # user is there and stays where they scrolled (checked by hand in Chromium with JupyterLab 4.6).
    assert widget.log_view.layout.flex_flow == "column-reverse" and widget.log_blocks.layout.flex == "0 0 auto"
    widget.terminal.feed("".join(f"line {i}\n" for i in range(25)))
    widget._render_log()
    blocks = widget.log_blocks.children
    assert len(blocks) == 3 and "line 0\nline 1" in blocks[0].value and "line 24" in blocks[2].value
    sent = []
    for block in blocks:
        block.observe(lambda change, block=block: sent.append(blocks.index(block)), "value")
    widget.terminal.feed("step 1/2\rstep 2/2")
    widget._render_log()
    assert widget.log_blocks.children[:3] == blocks and sent == [2]  # the tail block only
    assert "step 2/2" in blocks[2].value and "step 1/2" not in blocks[2].value
    widget.terminal.feed("\n" + "".join(f"more {i}\n" for i in range(300)))
    widget._render_log()
    shown = [b for b in widget.log_blocks.children if b.layout.display != "none"]
    assert widget.log_blocks.children[:3] == blocks and len(shown) == 21  # the last 200 lines, and a block
    assert widget.show_all.layout.display == ""
    widget.show_all.value = True
    assert all(b.layout.display != "none" for b in widget.log_blocks.children)


def test_rich_outputs_show_one_widget_each_and_honour_updates_and_clears():
    widget = JobWidget(None, JOB)
    stream = DisplayStream()
    lines = [
        {"output_type": "display_data", "data": {"image/png": "iVBOR", "text/plain": "<Figure>"}, "metadata": {}},
        {"output_type": "display_data", "data": {"text/html": "<b>0%</b>"}, "metadata": {},
         "transient": {"display_id": "p"}},
        {"output_type": "update_display_data", "data": {"text/html": "<b>50%</b>"}, "metadata": {},
         "transient": {"display_id": "p"}},
    ]
    raw = "".join(json.dumps(line) + "\n" for line in lines).encode()
    first = stream.feed(raw[:50])  # a partial line waits for its end
    for output in first + stream.feed(raw[50:]):
        widget.show_output(output)
    assert first == [] and stream.offset == len(raw)
    views = widget.displays_view.children
    assert len(views) == 2 and views[0].outputs[0]["data"]["image/png"] == "iVBOR"
    assert views[1].outputs[0]["data"] == {"text/html": "<b>50%</b>"}
    widget.show_output({"output_type": "clear_output", "wait": True})
    assert len(widget.displays_view.children) == 2  # wait=True: cleared when the next output comes
    widget.show_output(safe_output({"output_type": "execute_result", "execution_count": 1,
                                    "data": {"text/plain": "42", "text/markdown": "**42**"}, "metadata": {}}))
    assert [o["data"] for o in widget.displayed] == [{"text/plain": "42", "text/markdown": "**42**"}]
    # Text alone, and errors, are in the job's log already (the job prints them as terminal IPython).
    assert not adds_to_log({"output_type": "execute_result", "data": {"text/plain": "42"}})
    assert not adds_to_log({"output_type": "error", "ename": "E", "evalue": "", "traceback": []})


def test_what_the_job_wrote_cannot_run_code_in_the_notebook():
    html = ('<style>.x{}</style><table class="dataframe" onclick="steal()"><tr><td>1</td></tr></table>'
            '<script>alert(1)</script><a href="javascript:alert(1)">x</a><img src="data:image/png;base64,AA">')
    assert clean_html(html) == ('<table class="dataframe"><tr><td>1</td></tr></table><a>x</a>'
                                '<img src="data:image/png;base64,AA">')
    output = safe_output({"output_type": "display_data", "metadata": {}, "data": {
        "application/javascript": "alert(1)", "text/html": html, "text/plain": "t",
        "application/vnd.jupyter.widget-view+json": {"model_id": "x"}}})
    assert sorted(output["data"]) == ["text/html", "text/plain"]
    assert safe_output({"output_type": "display_data", "data": {"application/javascript": "x"}}) is None
    assert safe_output({"output_type": "stream", "text": "x"}) is None


def test_the_widget_links_each_file_each_folder_as_a_tar_and_all_of_them():
    widget = JobWidget(None, JOB)
    base = "/jupyter-jobs/api/jobs/7/outputs/"
    widget._render_outputs([
        {"path": "metrics.txt", "size": 12, "url": base + "metrics.txt"},
        {"path": "ckpt/a.bin", "size": 2048, "url": base + "ckpt/a.bin"},
        {"path": "ckpt/sub/b.bin", "size": 2048, "url": base + "ckpt/sub/b.bin"},
        {"path": "leak", "size": 11, "type": "symlink", "url": base + "leak"},
    ])
    shown = widget.outputs_view.value
    assert f"href='{base}metrics.txt'" in shown and "(12 B)" in shown
    assert f"href='{base}ckpt'" in shown and "ckpt/</a> (2 files, 4.0 KiB, one .tar)" in shown
    assert "href='/jupyter-jobs/api/jobs/7/outputs?archive=tar'" in shown and "leak" not in shown
