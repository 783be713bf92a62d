"""Registration, login, rotation with reuse detection, logout, lockout, roles granted by admins."""

from __future__ import annotations

from server_helpers import PASSWORD, bearer, create_user, login

from server.core.security import password_hasher


def test_register_creates_a_viewer_who_can_read_but_not_upload(client) -> None:
    r = client.post("/auth/register", json={"username": "Alice", "password": PASSWORD, "email": "a@example.com"})
    assert r.status_code == 201, r.text
    assert r.json()["role"] == "viewer" and r.json()["username"] == "alice"
    tokens = login(client, "ALICE")  # user names are case-insensitive
    me = client.get("/auth/me", headers=bearer(tokens)).json()
    assert me["username"] == "alice" and me["role"] == "viewer"
    assert "wafers:read" in me["permissions"] and "wafers:upload" not in me["permissions"]
    assert client.get("/wafers", headers=bearer(tokens)).status_code == 200
    assert client.post("/wafers", headers=bearer(tokens)).status_code == 403


def test_registration_rules(client, app_factory) -> None:
    r = client.post("/auth/register", json={"username": "bob", "password": "short"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "weak_password"
    assert "at least 10 characters" in r.json()["error"]["message"]
    r = client.post("/auth/register", json={"username": "no spaces!", "password": PASSWORD})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_username"
    assert client.post("/auth/register", json={"username": "bob", "password": PASSWORD}).status_code == 201
    r = client.post("/auth/register", json={"username": "BOB", "password": PASSWORD})
    assert r.status_code == 409 and r.json()["error"]["code"] == "username_taken"
    # a role cannot be chosen at registration: the field is ignored, the account is a viewer
    r = client.post("/auth/register", json={"username": "carol", "password": PASSWORD, "role": "admin"})
    assert r.status_code == 201 and r.json()["role"] == "viewer"
    closed = app_factory(allow_registration=False)
    r = closed.post("/auth/register", json={"username": "dave", "password": PASSWORD})
    assert r.status_code == 403 and r.json()["error"]["code"] == "registration_disabled"


def test_a_malformed_email_is_refused_naming_the_field(client, as_role) -> None:
    for bad in (
        "alice",
        "alice@",
        "@example.com",
        "a b@example.com",
        "a@@example.com",
        "a@example.",
        "a@x..com",
        "a@-fab",
        "",
    ):
        r = client.post("/auth/register", json={"username": "alice", "password": PASSWORD, "email": bad})
        assert r.status_code == 422, (bad, r.text)
        err = r.json()["error"]
        assert err["code"] == "invalid_input" and err["message"].startswith("body field email: "), (bad, err)
        assert err["details"][0]["field"] == "body field email"
        # an admin creating an account is held to the same rule
        r = client.post(
            "/users", json={"username": "alice", "password": PASSWORD, "email": bad}, headers=as_role("admin")
        )
        assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "body field email", (bad, r.text)
    ok = client.post(
        "/auth/register", json={"username": "alice", "password": PASSWORD, "email": "a.b+c@mail.example.org"}
    )
    assert ok.status_code == 201 and ok.json()["email"] == "a.b+c@mail.example.org"
    intranet = client.post("/auth/register", json={"username": "carol", "password": PASSWORD, "email": "carol@fabhost"})
    assert intranet.status_code == 201, intranet.text  # a one-label intranet domain is an address too
    nobody = client.post("/auth/register", json={"username": "bob", "password": PASSWORD, "email": None})
    assert nobody.status_code == 201 and nobody.json()["email"] is None


def test_passwords_are_stored_as_argon2id(client) -> None:
    uid = create_user(client, "erin", "viewer")
    ctx = client.app.state.ctx
    from server.db.models import User

    with ctx.sessions() as s:
        stored = s.get(User, uid).password_hash
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    # the production defaults are the RFC 9106 profile (tests lower the cost for speed)
    from server.core.config import Settings

    prod = password_hasher(Settings(jwt_secret="x" * 40))
    assert (prod.time_cost, prod.memory_cost) == (3, 65536)


def test_wrong_password_and_unknown_user_look_the_same(client) -> None:
    create_user(client, "frank", "viewer")
    a = client.post("/auth/login", data={"username": "frank", "password": "wrong-password-1"})
    b = client.post("/auth/login", data={"username": "nobody", "password": "wrong-password-1"})
    assert a.status_code == b.status_code == 401
    assert a.json()["error"]["code"] == b.json()["error"]["code"] == "bad_credentials"
    assert a.json()["error"]["message"] == b.json()["error"]["message"]


def test_refresh_rotates_and_a_reused_token_revokes_the_session(client) -> None:
    create_user(client, "gina", "engineer")
    first = login(client, "gina")
    r = client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"] and second["access_token"] != first["access_token"]
    assert client.get("/auth/me", headers=bearer(second)).status_code == 200
    # the spent refresh token comes back (stolen?): refused, and the whole session ends
    r = client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 401 and r.json()["error"]["code"] == "refresh_token_reused"
    r = client.get("/auth/me", headers=bearer(second))
    assert r.status_code == 401 and r.json()["error"]["code"] == "session_revoked"
    r = client.post("/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert r.status_code == 401 and r.json()["error"]["code"] == "session_revoked"
    # a fresh login still works, and an access token is no refresh token
    third = login(client, "gina")
    r = client.post("/auth/refresh", json={"refresh_token": third["access_token"]})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_token"
    assert client.get("/auth/me", headers=bearer(third)).status_code == 200


def test_logout_ends_this_session_only(client) -> None:
    create_user(client, "hank", "viewer")
    laptop, phone = login(client, "hank"), login(client, "hank")
    r = client.post("/auth/logout", headers=bearer(laptop))
    assert r.status_code == 204 and r.content == b""
    r = client.get("/auth/me", headers=bearer(laptop))
    assert r.status_code == 401 and r.json()["error"]["code"] == "session_revoked"
    assert client.post("/auth/refresh", json={"refresh_token": laptop["refresh_token"]}).status_code == 401
    assert client.get("/auth/me", headers=bearer(phone)).status_code == 200


def test_failed_logins_lock_the_account_for_a_while(app_factory) -> None:
    client = app_factory(login_max_failures=3, login_lock_seconds=120)
    create_user(client, "ivan", "viewer")
    for _ in range(3):
        r = client.post("/auth/login", data={"username": "ivan", "password": "not-the-password"})
        assert r.status_code == 401
    # now even the right password is refused until the lock ends
    r = client.post("/auth/login", data={"username": "ivan", "password": PASSWORD})
    assert r.status_code == 429, r.text
    body = r.json()["error"]
    assert body["code"] == "login_locked" and "this account" in body["message"]
    assert 0 < int(r.headers["retry-after"]) <= 120
    # the lock ends: move it into the past (as time would)
    from sqlalchemy import update

    from server.db.base import utcnow
    from server.db.models import LoginThrottle

    with client.app.state.ctx.sessions() as s:
        s.execute(update(LoginThrottle).values(locked_until=utcnow()))
        s.commit()
    assert client.post("/auth/login", data={"username": "ivan", "password": PASSWORD}).status_code == 200


def test_failed_logins_from_one_address_lock_that_address(app_factory) -> None:
    client = app_factory(login_max_failures=4)
    create_user(client, "judy", "viewer")
    for i in range(4):  # a sweep over many user names from one address
        client.post("/auth/login", data={"username": f"guess{i}", "password": "not-the-password"})
    r = client.post("/auth/login", data={"username": "judy", "password": PASSWORD})
    assert r.status_code == 429 and "this address" in r.json()["error"]["message"]


def test_only_an_admin_grants_roles_and_the_last_admin_stays(client, as_role) -> None:
    uid = create_user(client, "kim", "viewer")
    r = client.patch(f"/users/{uid}", json={"role": "engineer"}, headers=as_role("engineer"))
    assert r.status_code == 403 and r.json()["error"]["code"] == "permission_denied"
    kim = login(client, "kim")
    assert client.post("/wafers", headers=bearer(kim)).status_code == 403
    r = client.patch(f"/users/{uid}", json={"role": "engineer"}, headers=as_role("admin"))
    assert r.status_code == 200 and r.json()["role"] == "engineer"
    # the role is read per request: the same token now may upload (422: no files sent)
    assert client.post("/wafers", headers=bearer(kim)).status_code == 422
    # deactivating logs the user out at once
    r = client.patch(f"/users/{uid}", json={"is_active": False}, headers=as_role("admin"))
    assert r.status_code == 200
    r = client.get("/auth/me", headers=bearer(kim))
    assert r.status_code == 401
    # the only admin cannot demote themselves
    admin_id = client.get("/auth/me", headers=as_role("admin")).json()["id"]
    r = client.patch(f"/users/{admin_id}", json={"role": "viewer"}, headers=as_role("admin"))
    assert r.status_code == 409 and r.json()["error"]["code"] == "last_admin"
    users = client.get("/users", headers=as_role("admin")).json()
    assert {u["username"] for u in users["items"]} >= {"kim", "admin-user"}
    r = client.post(
        "/users", json={"username": "lee", "password": PASSWORD, "role": "annotator"}, headers=as_role("admin")
    )
    assert r.status_code == 201 and r.json()["role"] == "annotator"


def test_password_change_logs_out_everywhere(client) -> None:
    create_user(client, "mia", "viewer")
    a, b = login(client, "mia"), login(client, "mia")
    r = client.post(
        "/auth/password",
        json={"current_password": "nope-nope-nope", "new_password": "a new long password"},
        headers=bearer(a),
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "wrong_password"
    r = client.post(
        "/auth/password", json={"current_password": PASSWORD, "new_password": "a new long password"}, headers=bearer(a)
    )
    assert r.status_code == 204
    assert client.get("/auth/me", headers=bearer(b)).status_code == 401
    assert client.post("/auth/login", data={"username": "mia", "password": PASSWORD}).status_code == 401
    login(client, "mia", "a new long password")
