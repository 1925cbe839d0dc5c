<?php

declare(strict_types=1);

/**
 * Signing in as one of the demo users: no passwords, one button each. The
 * session id is renewed at sign-in, as any real login should. A
 * `?transports=` choice is kept for the demo page.
 */

if ($_SERVER['REQUEST_METHOD'] === 'POST') {
    $user = (string) ($_POST['user'] ?? '');
    if (isset(DEMO_USERS[$user])) {
        demo_session(true);
        session_regenerate_id(true);
        $_SESSION = ['user' => $user];
        header('Location: /' . demo_transports_query(), true, 303);
        exit;
    }
    http_response_code(400);
}
$current = demo_session();
$next = demo_transports_query();
?>
<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Sign in · push-core demo</title>
  <link rel="stylesheet" href="/style.css">
</head>
<body class="login">
  <main class="card login-card">
    <h1><span class="brand">push-core</span> demo</h1>
    <p>Sign in as one of the demo users. Open another browser profile or a
      private window to sign in as someone else and message each other.</p>
    <form method="post" action="/login<?= h($next) ?>" class="users">
      <?php foreach (array_keys(DEMO_USERS) as $name): ?>
        <button type="submit" name="user" value="<?= h($name) ?>">
          <span class="avatar avatar-<?= h($name) ?>"><?= h(strtoupper($name[0])) ?></span>
          <?= h($name) ?>
        </button>
      <?php endforeach ?>
    </form>
    <?php if ($current !== null): ?>
      <p class="hint">You are signed in as <strong><?= h($current) ?></strong>: <a href="/">back to the demo</a>.</p>
    <?php endif ?>
  </main>
</body>
</html>
