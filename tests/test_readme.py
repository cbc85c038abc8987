"""The README's API example runs as written."""
import pathlib
import re


def test_readme_api_example_runs():
    text = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
    api = text[text.index("## API"):]
    code = re.search(r"```python\n(.*?)```", api, re.S).group(1)
    exec(compile(code, "README.md (API example)", "exec"), {})
