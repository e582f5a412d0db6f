-- HTTP push types at configuration time (issue 4): the URLs conveyor may call
-- are http(s), carry no credentials and name a host conveyor.allowed_hosts
-- admits, checked when a push type or service is created or altered; the
-- token stays a secret's name. What happens at call time is
-- test/tap/070_http.pl's (real endpoints, real workers).
BEGIN;
\ir _helpers.psql
SELECT plan(30);

SELECT conveyor.push_plan_create('cvt_http_plan', '[{"scope": "*", "amount": "50%"}]');

-- ---------------------------------------------------------------- the allow-list

SET conveyor.allowed_hosts = '';
SELECT throws_ok($$SELECT conveyor.http_push_type_create('cvt_h0', endpoints => '{http://127.0.0.1:8700}')$$,
    '42501', 'endpoint "http://127.0.0.1:8700" is not an allowed host',
    'an empty conveyor.allowed_hosts allows no host');

SET conveyor.allowed_hosts = '10.0.0.5, api.example.com:8700 , *.fleet.example';
SELECT lives_ok($$SELECT conveyor.http_push_type_create('cvt_h1', endpoints => '{http://10.0.0.5:8700,https://10.0.0.5}')$$,
    'a bare host entry allows every port of that host, http and https');
SELECT lives_ok($$SELECT conveyor.http_push_type_create('cvt_h2', endpoints => '{http://api.example.com:8700/base}')$$,
    'a host:port entry allows that port');
SELECT throws_ok($$SELECT conveyor.http_push_type_create('cvt_h3', endpoints => '{http://api.example.com:8701}')$$,
    '42501', NULL, '... and no other');
SELECT throws_ok($$SELECT conveyor.http_push_type_create('cvt_h3', endpoints => '{http://api.example.com}')$$,
    '42501', NULL, '... not even the default port');
SELECT lives_ok($$SELECT conveyor.http_push_type_create('cvt_h4', endpoints => '{http://a.fleet.example:1,http://B.C.FLEET.EXAMPLE:2}')$$,
    '*.domain allows hosts under the domain, whatever their case');
SELECT throws_ok($$SELECT conveyor.http_push_type_create('cvt_h5', endpoints => '{http://fleet.example:1}')$$,
    '42501', NULL, '*.domain does not allow the domain itself');
SELECT throws_ok($$SELECT conveyor.http_push_type_create('cvt_h5', endpoints => '{http://evilfleet.example:1}')$$,
    '42501', NULL, '... nor a host that merely ends with its name');
SELECT throws_ok($$SELECT conveyor.http_push_type_create('cvt_h5', endpoints => '{http://10.0.0.5.evil.example:1}')$$,
    '42501', NULL, 'an allowed address as a prefix of a host name is not allowed');
SELECT throws_ok($$SELECT conveyor.http_push_type_create('cvt_h5', endpoints => '{http://10.0.0.5:8700,http://10.0.0.6:8700}')$$,
    '42501', 'endpoint "http://10.0.0.6:8700" is not an allowed host',
    'one endpoint not allowed refuses the push type, naming it');
SELECT is((SELECT count(*) FROM conveyor.push_type WHERE name = 'cvt_h5'), 0::bigint,
    'nothing of a refused push type was stored');

-- ---------------------------------------------------------------- URL shapes

SELECT throws_ok($$SELECT conveyor.http_push_type_create('cvt_h6', endpoints => '{ftp://10.0.0.5/}')$$,
    '22023', NULL, 'only http and https');
SELECT throws_ok($$SELECT conveyor.http_push_type_create('cvt_h6', endpoints => '{file:///etc/passwd}')$$,
    '22023', NULL, 'no file: URLs');
SELECT throws_ok($$SELECT conveyor.http_push_type_create('cvt_h6', endpoints => '{"not a url"}')$$,
    '22023', NULL, 'not a URL at all');

-- credentials in a URL: refused, and not repeated back (cvt.error_of: the error as jsonb)
SELECT is(cvt.error_of($$SELECT conveyor.http_push_type_create('cvt_h7', endpoints => '{http://bob:hunter2-pw@10.0.0.5:8700}')$$)->>'sqlstate',
    '22023', 'a URL with user:password is refused (22023)');
SELECT unalike(cvt.error_of($$SELECT conveyor.http_push_type_create('cvt_h7', endpoints => '{http://bob:hunter2-pw@10.0.0.5:8700}')$$)::text,
    '%hunter2%', '... and the error does not repeat the password');
SELECT is(cvt.error_of($$SELECT conveyor.service_create('cvt_s7', 'cvt_h1', 'cvt_http_plan', '{"endpoints": ["http://bob:hunter2-pw@10.0.0.5:8700"]}')$$)->>'sqlstate',
    '22023', 'the same in a service''s endpoints');
SELECT unalike(cvt.error_of($$SELECT conveyor.service_create('cvt_s7', 'cvt_h1', 'cvt_http_plan', '{"endpoints": ["http://bob:hunter2-pw@10.0.0.5:8700"]}')$$)::text,
    '%hunter2%', '... without the password');
SELECT is(cvt.error_of($$SELECT conveyor.http_push_type_create('cvt_h7', endpoints => '{http://bob@10.0.0.5:8700}')$$)->>'sqlstate',
    '22023', 'a user name alone is refused too');

-- ---------------------------------------------------------------- services

SELECT lives_ok($$SELECT conveyor.service_create('cvt_s1', 'cvt_h1', 'cvt_http_plan', '{"endpoints": ["http://a.fleet.example:8700"]}')$$,
    'a service with allowed endpoints of its own');
SELECT lives_ok($$SELECT conveyor.service_create('cvt_s2', 'cvt_h1', 'cvt_http_plan', '{}')$$,
    'a service without endpoints uses its push type''s');
SELECT throws_ok($$SELECT conveyor.service_create('cvt_s3', 'cvt_h1', 'cvt_http_plan', '{"endpoints": ["http://192.168.1.1:8700"]}')$$,
    '42501', NULL, 'service_create refuses a host not allowed');
SELECT throws_ok($$SELECT conveyor.service_alter('cvt_s1', push_type_config => '{"endpoints": ["http://192.168.1.1:8700"]}')$$,
    '42501', NULL, 'so does service_alter');
SELECT conveyor.http_push_type_create('cvt_h8');
SELECT throws_ok($$SELECT conveyor.service_create('cvt_s4', 'cvt_h8', 'cvt_http_plan', '{}')$$,
    '22023', NULL, 'a push type without endpoints needs them in the service''s config');
SELECT throws_ok($$SELECT conveyor.service_create('cvt_s4', 'cvt_h1', 'cvt_http_plan', '{"endpoints": ["http://10.0.0.5:1", "http://10.0.0.5:1"]}')$$,
    '22023', NULL, 'an endpoint listed twice is refused');

-- ---------------------------------------------------------------- the setting and the token

SET SESSION AUTHORIZATION DEFAULT;
CREATE ROLE cvt_http_admin IN ROLE conveyor_admin;
SET ROLE cvt_http_admin;
SELECT throws_ok($$SET conveyor.allowed_hosts = '*'$$, '42501', NULL,
    'conveyor.allowed_hosts is for superusers only, not even conveyor administrators');
RESET ROLE;

SELECT throws_ok($$SELECT conveyor.http_push_type_create('cvt_h9', token_secret => 'cvt_no_such_secret')$$,
    '42704', NULL, 'the token must name a stored secret');
SELECT conveyor.secret_set('cvt_http_token', 'cvt-token-value-123');
SELECT conveyor.http_push_type_create('cvt_h10', token_secret => 'cvt_http_token', endpoints => '{http://10.0.0.5:8700}');
SELECT is((SELECT count(*) FROM conveyor.http_push_type h WHERE strpos(h::text, 'cvt-token-value-123') > 0)
        + (SELECT count(*) FROM conveyor.config_event e WHERE strpos(e::text, 'cvt-token-value-123') > 0),
    0::bigint, 'the push type and its config event name the secret, never its value');

-- the workers' functions compile and run (PL/pgSQL checks a query only when it first runs)
SELECT lives_ok($$SELECT * FROM conveyor._http_claim(0)$$, 'conveyor._http_claim runs');
SELECT lives_ok($$SELECT conveyor._http_record(-1, 'get_units', '', NULL, NULL, NULL, 0)$$, 'conveyor._http_record runs');

SELECT * FROM finish();
ROLLBACK;
