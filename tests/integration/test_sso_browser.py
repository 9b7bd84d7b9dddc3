"""sso: one whole sign-in in a real browser -- headless Chromium driven through chromedriver
(Debian's chromium, chromium-driver, python3-selenium) -- so redirects, cookies and SameSite are
what a browser does. The provider (npm's oidc-provider) is another site than gatehouse
(http://localhost:P against http://127.0.0.1:G), as a real one is: the Lax login-state cookie
must still come back on the provider's top-level redirect to the callback."""

import json
import shutil

import pytest

import harness
import oidc

SECRET = "browser-secret-0123456789-abcdefghijklm"


def unavailable():
    for binary in ("chromium", "chromedriver"):
        if not shutil.which(binary):
            return "%s is not installed (contrib/scripts/deps.sh installs chromium-driver)" % binary
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "python3-selenium is not installed (contrib/scripts/deps.sh installs it)"
    return oidc.unavailable()


pytestmark = pytest.mark.skipif(bool(unavailable()), reason=unavailable() or "-")


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    opts = Options()
    opts.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--no-first-run", "--disable-background-networking", "--disable-sync",
                "--disable-component-update", "--disable-default-apps"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    driver.set_page_load_timeout(20)
    yield driver
    driver.quit()


def test_sign_in_with_a_real_browser(processes, tmp_path, browser):
    from selenium.webdriver.common.by import By
    port = harness.free_port()
    backend = harness.Backend(tmp_path, "browser-app")
    processes.backends.append(backend)
    base = "http://127.0.0.1:%d" % port
    provider = oidc.Provider(tmp_path, [{
        "client_id": "gatehouse", "client_secret": "browser-client-secret",
        "redirect_uris": [base + "/oauth2/callback"],
        "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"]}],
        host="localhost")
    try:
        text = (
            "[server]\nworkers = 2\n\n" + harness.modules_toml(("round_robin", "sso")) + "\n"
            + "[[listener]]\nlisten = \"127.0.0.1:%d\"\n\n" % port
            + "[upstream.app]\nservers = [{ address = \"%s\" }]\n\n" % backend.address
            + "[upstream.idp]\nservers = [{ address = \"127.0.0.1:%d\" }]\n" % provider.port
            + "host = \"localhost:%d\"\n\n" % provider.port
            + "[filter.sso]\nsecrets = [\"%s\"]\ncookie_secure = false\n\n" % SECRET
            + "[filter.sso.providers.local]\nissuer = \"%s\"\nupstream = \"idp\"\n" % provider.issuer
            + "client_id = \"gatehouse\"\nclient_secret = \"browser-client-secret\"\n\n"
            + "[[route]]\npath = \"/\"\nupstream = \"app\"\nfilters = [\"sso\"]\n")
        g = harness.Gatehouse(tmp_path, text, name="sso-browser")
        processes.gatehouses.append(g)

        browser.get(base + "/echo/wiki?page=Home")
        # At the provider (another site): its login form, then its consent form.
        assert browser.current_url.startswith(provider.issuer + "/interaction/"), \
            browser.current_url
        browser.find_element(By.NAME, "login").send_keys("alice")
        browser.find_element(By.NAME, "password").send_keys("any")
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

        def consent_or_back():
            # The next page once it has loaded: the provider's consent form, or gatehouse.
            from selenium.common.exceptions import StaleElementReferenceException
            try:
                if browser.current_url.startswith(base):
                    return "back"
                prompts = browser.find_elements(By.NAME, "prompt")
                if prompts and prompts[0].get_attribute("value") == "consent":
                    return "consent"
            except StaleElementReferenceException:
                pass  # the page changed under the lookup: look again
            return None
        where = harness.wait_until(consent_or_back, 10)
        if where == "consent":
            browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        # Back where the user started, signed in; the page is the backend's echo.
        assert harness.wait_until(lambda: browser.current_url == base + "/echo/wiki?page=Home",
                                  10), browser.current_url
        pre = harness.wait_until(lambda: browser.find_elements(By.TAG_NAME, "pre"), 10)
        assert pre, browser.page_source[:500]
        echo = json.loads(pre[0].text)
        headers = {k.lower(): v for k, v in echo["headers"]}
        assert headers["x-forwarded-user"] == "alice"
        assert "gh_sso" not in headers.get("cookie", "")
        cookies = {c["name"]: c for c in browser.get_cookies()}
        session = cookies["gh_sso"]
        assert session["httpOnly"] and session["sameSite"] == "Lax" and session["path"] == "/"
        assert not any(n.startswith("gh_sso_login_") for n in cookies)  # the state was used up
        # The next page needs no provider round trip.
        provider.stop()
        browser.get(base + "/echo/wiki?page=Other")
        echo = json.loads(browser.find_element(By.TAG_NAME, "pre").text)
        assert ["X-Forwarded-User", "alice"] in echo["headers"]
    finally:
        provider.stop()
