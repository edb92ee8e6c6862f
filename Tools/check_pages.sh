#!/usr/bin/env bash
# Renders learngene's pages in headless Chromium (Debian's `chromium`) and checks them:
#   - the page logs nothing to the console (no script error, no failed load);
#   - every <img> loaded and has a size on the page, every <svg> has a size.
# Also saves a screenshot of each page next to it as <page>.png, to look at (1250 wide,
# CHECK_PAGES_HEIGHT tall, default 1800).
#
#   bash Tools/check_pages.sh Outbox/index.html Outbox/fashion-pretrain/report.html
#
# Exit status: 0 all pages pass, 1 a page failed (what failed is printed), 2 no chromium.
set -uo pipefail
browser=$(command -v chromium || command -v chromium-browser || true)
[ -n "$browser" ] || { echo "check_pages: chromium not found (apt-get install chromium)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The harness loads the page in an iframe and measures its images and SVGs once it has loaded.
cat > "$work/harness.html" <<'HTML'
<!DOCTYPE html><html><body><pre id="result">pending</pre><iframe id="f" width="1200" height="2000"></iframe>
<script>
var f = document.getElementById('f');
f.onload = function () {
  var d = f.contentDocument, out = [];
  if (!d) { document.getElementById('result').textContent = 'BAD cannot read the page\nDONE'; return; }
  Array.prototype.forEach.call(d.images, function (img) {
    var r = img.getBoundingClientRect();
    out.push((img.complete && img.naturalWidth > 0 && r.width > 0 && r.height > 0 ? 'OK' : 'BAD') + ' img ' + img.getAttribute('src') + ' ' + img.naturalWidth + 'x' + img.naturalHeight);
  });
  Array.prototype.forEach.call(d.querySelectorAll('svg'), function (s, i) {
    var r = s.getBoundingClientRect();
    out.push((r.width > 0 && r.height > 0 ? 'OK' : 'BAD') + ' svg ' + i + ' ' + Math.round(r.width) + 'x' + Math.round(r.height));
  });
  document.getElementById('result').textContent = out.join('\n') + '\nDONE';
};
f.src = decodeURIComponent(location.hash.slice(1));
</script></body></html>
HTML
flags=(--headless --no-sandbox --disable-gpu --hide-scrollbars --allow-file-access-from-files
       --user-data-dir="$work/profile" --virtual-time-budget=5000)
status=0
for page in "$@"; do
  abs=$(realpath "$page")
  url="file://$abs"
  out=$(timeout 120 "$browser" "${flags[@]}" --enable-logging=stderr --v=0 --dump-dom "file://$work/harness.html#$url" 2>"$work/log")
  result=$(printf '%s\n' "$out" | sed -n '/<pre id="result">/,/DONE/p' | sed 's/<[^>]*>//g')
  console=$(grep -F "INFO:CONSOLE" "$work/log" | grep -F "$abs" || true)
  timeout 120 "$browser" "${flags[@]}" --window-size=1250,"${CHECK_PAGES_HEIGHT:-1800}" --screenshot="$abs.png" "$url" >/dev/null 2>&1
  if ! printf '%s\n' "$result" | grep -q '^DONE'; then
    echo "FAIL $page: the page did not finish loading"; status=1
  elif printf '%s\n' "$result" | grep -q '^BAD' || [ -n "$console" ]; then
    echo "FAIL $page"; printf '%s\n' "$result" | grep '^BAD'; [ -n "$console" ] && printf 'console: %s\n' "$console"; status=1
  else
    echo "ok   $page: $(printf '%s\n' "$result" | grep -c '^OK img') images, $(printf '%s\n' "$result" | grep -c '^OK svg') SVGs, no console messages; screenshot $page.png"
  fi
done
exit $status
