async def test_hello(api):
    job = await api.submit({"name": "hello", "cmd": "echo hello from $JOB_ID"})
    done = await api.wait(job["id"])
    assert done["status"] == "Succeeded", done
    assert f"hello from {job['id']}" in await api.log(job["id"])
