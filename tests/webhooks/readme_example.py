"""The signature check of the README's "Verifying a delivery", taken from the README itself, so the documented code
is the code tested."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def verify_webhook_from_readme():
    text = README.read_text()
    section = text[text.index("#### Verifying a delivery"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the project's own README
    return namespace["verify_webhook"]
