"""The SecLang the waf module runs, written out as one text for nginx + Debian's ModSecurity
connector (libnginx-mod-http-modsecurity), so that the benchmark (tests/bench/waf_bench.py) and
the per-case CRS comparison (tests/waf/crs_runner.py --compare) give nginx exactly gatehouse's
rules and engine settings, in the same order.

gatehouse builds them from [filter.waf] (modules/waf/config.cpp): settings_directives() merged in
front, then engine_directives() with the base rules, then `rules_before`, then crs_setup, then
every *.conf of crs_rules in name order. libmodsecurity has no IncludeOptional, so the CRS files
are listed one by one. directive_drift() tells when config.cpp no longer writes what is here."""

import re
from pathlib import Path

TOP = Path(__file__).resolve().parent.parent.parent
CONFIG_CPP = TOP / "modules" / "waf" / "config.cpp"
CONFIG_HPP = TOP / "modules" / "waf" / "config.hpp"
CRS_SETUP = Path("/etc/modsecurity/crs/crs-setup.conf")
CRS_RULES = Path("/usr/share/modsecurity-crs/rules")
MODSEC_NGINX_MODULE = Path("/usr/lib/nginx/modules/ngx_http_modsecurity_module.so")

DEFAULT_RESPONSE_TYPES = ["text/html", "text/plain", "text/xml"]
INBOUND_THRESHOLD = 5  # the module's defaults
OUTBOUND_THRESHOLD = 4


def settings_directives(mode, paranoia, inbound=INBOUND_THRESHOLD, outbound=OUTBOUND_THRESHOLD):
    """settings_directives() of config.cpp: mode "on" or "detect"."""
    engine = {"on": "On", "detect": "DetectionOnly"}[mode]
    return (f"SecRuleEngine {engine}\n"
            f'SecAction "id:4290001,phase:1,pass,nolog,t:none,'
            f"setvar:tx.paranoia_level={paranoia},"
            f"setvar:tx.inbound_anomaly_score_threshold={inbound},"
            f'setvar:tx.outbound_anomaly_score_threshold={outbound}"\n')


BASE_RULES = """SecRule REQUEST_HEADERS:Content-Type "^(?:application(?:/soap\\+|/)|text/)xml" "id:200000,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=XML"
SecRule REQUEST_HEADERS:Content-Type "^application/json" "id:200001,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON"
SecRule &ARGS "@ge 1000" "id:200007,phase:2,t:none,log,deny,status:400,msg:'Failed to fully parse request body due to large argument count',severity:2"
SecRule REQBODY_ERROR "!@eq 0" "id:200002,phase:2,t:none,log,deny,status:400,msg:'Failed to parse request body.',logdata:'%{reqbody_error_msg}',severity:2"
SecRule MULTIPART_STRICT_ERROR "!@eq 0" "id:200003,phase:2,t:none,log,deny,status:400,msg:'Multipart request body failed strict validation'"
SecRule MULTIPART_UNMATCHED_BOUNDARY "@eq 1" "id:200004,phase:2,t:none,log,deny,msg:'Multipart parser detected a possible unmatched boundary.'"
SecRule TX:/^MSC_/ "!@streq 0" "id:200005,phase:2,t:none,deny,msg:'ModSecurity internal error flagged: %{MATCHED_VAR_NAME}'"
"""


def engine_directives(response_types=DEFAULT_RESPONSE_TYPES):
    """engine_directives() of config.cpp with request_body = true, response_body = "buffer"
    (SecResponseBodyAccess On) and base_rules = true."""
    return ("SecRequestBodyAccess On\n"
            "SecRequestBodyLimit 1073741824\n"
            "SecRequestBodyNoFilesLimit 1073741824\n"
            "SecRequestBodyLimitAction ProcessPartial\n"
            "SecRequestBodyJsonDepthLimit 512\n"
            "SecArgumentsLimit 1000\n"
            "SecPcreMatchLimit 1000\n"
            "SecPcreMatchLimitRecursion 1000\n"
            "SecResponseBodyAccess On\n"
            f"SecResponseBodyMimeType {' '.join(response_types)}\n"
            "SecResponseBodyLimit 1073741824\n"
            "SecResponseBodyLimitAction ProcessPartial\n"
            "SecArgumentSeparator &\n"
            "SecCookieFormat 0\n"
            "SecAuditEngine Off\n" + BASE_RULES)


def directive_drift():
    """Lines of settings_directives() / engine_directives() that config.cpp no longer writes (a
    change there must be copied here, or nginx would run other settings)."""
    try:
        src = CONFIG_CPP.read_text()
    except OSError:
        return ["(modules/waf/config.cpp not readable)"]
    flat = src.replace('\\"', '"').replace("\\\\", "\\")
    missing = []
    for line in engine_directives().splitlines():
        probe = line
        if line.startswith("SecRequestBodyAccess") or line.startswith("SecResponseBodyAccess"):
            probe = line.split()[0] + " "
        elif line.startswith("SecResponseBodyMimeType"):
            probe = "SecResponseBodyMimeType"
        if probe not in flat:
            missing.append(line)
    for probe in ("SecRuleEngine ", ",phase:1,pass,nolog,t:none,setvar:tx.paranoia_level=",
                  ",setvar:tx.inbound_anomaly_score_threshold=",
                  ",setvar:tx.outbound_anomaly_score_threshold=", "kSettingsRuleId"):
        if probe not in flat:
            missing.append(f"settings: {probe}")
    hpp = CONFIG_HPP.read_text() if CONFIG_HPP.exists() else ""
    m = re.search(r"kSettingsRuleId\s*=\s*(\d+)", hpp)
    if m and m.group(1) != "4290001":
        missing.append(f"settings rule id is {m.group(1)}, not 4290001")
    return missing


def crs_files():
    """The CRS rule files in the order the module includes them; raises when not installed."""
    files = sorted(CRS_RULES.glob("*.conf"))
    if not CRS_SETUP.exists() or not files:
        raise FileNotFoundError(f"OWASP CRS missing ({CRS_SETUP}, {CRS_RULES}/*.conf): "
                                "apt-get install modsecurity-crs")
    return files


def nginx_rules_text(mode, paranoia, response_types=DEFAULT_RESPONSE_TYPES, before=()):
    """One file for `modsecurity_rules_file`: what the module runs with crs = true, this mode,
    paranoia and response_types, `rules_before` = before, other keys at their defaults."""
    lines = [f"# The rules gatehouse's waf module runs with crs = true, mode = \"{mode}\", "
             f"paranoia = {paranoia},", "# in the same order (tests/waf/modsec_text.py).",
             settings_directives(mode, paranoia).rstrip(),
             engine_directives(response_types).rstrip()]
    lines += [f"Include {f}" for f in before]
    lines += [f"Include {CRS_SETUP}"] + [f"Include {f}" for f in crs_files()]
    return "\n".join(lines) + "\n"
