<?php

declare(strict_types=1);

/**
 * The demo page: a live feed of what push-core delivers to this browser, a
 * form that publishes through PHP, and who of the other users is online.
 * public/app.js does the live part; this file only lays out the page and
 * hands the script its settings in data- attributes.
 */

$me = demo_session(true);
if ($me === null) {
    header('Location: /login' . demo_transports_query(), true, 303);
    exit;
}
$config = demo_config();
$csrf = demo_csrf_token();
session_write_close();
// Rendered last thing before the page goes out: what is published from here on reaches the page.
$offset = demo_position();
$others = array_values(array_diff(array_keys(DEMO_USERS), [$me]));
$rooms = array_unique(array_merge(...array_column(DEMO_USERS, 'rooms')));
?>
<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title><?= h($me) ?> · push-core demo</title>
  <link rel="stylesheet" href="/style.css">
</head>
<body data-user="<?= h($me) ?>" data-namespace="<?= h($config['namespace']) ?>"
      data-push-port="<?= $config['push_port'] ?>" data-csrf="<?= h($csrf) ?>"
      <?php if ($offset !== null): ?>data-push-offset="<?= h($offset) ?>"<?php endif ?>>
  <header class="topbar">
    <div class="title"><span class="brand">push-core</span> demo</div>
    <div id="status" class="status" data-state="connecting">
      <span class="dot"></span><span class="label">connecting…</span>
    </div>
    <form method="post" action="/logout" class="me">
      <span class="avatar avatar-<?= h($me) ?>"><?= h(strtoupper($me[0])) ?></span>
      <strong><?= h($me) ?></strong>
      <button type="submit" class="link">Sign out</button>
    </form>
  </header>

  <main class="layout">
    <section class="card compose">
      <h2>Send a message</h2>
      <form id="send-form">
        <label for="target">To</label>
        <select id="target" name="target">
          <option value="everyone">Everyone (broadcast)</option>
          <optgroup label="One user (private)">
            <?php foreach (array_keys(DEMO_USERS) as $user): ?>
              <option value="user:<?= h($user) ?>"><?= h($user) ?><?= $user === $me ? ' (you)' : '' ?></option>
            <?php endforeach ?>
          </optgroup>
          <optgroup label="A room">
            <?php foreach ($rooms as $room): ?>
              <option value="room:<?= h($room) ?>"><?= h($room) ?></option>
            <?php endforeach ?>
          </optgroup>
        </select>
        <label for="text">Message</label>
        <input id="text" name="text" maxlength="<?= DEMO_MAX_TEXT ?>" required autocomplete="off"
               placeholder="Say hello">
        <button type="submit">Send</button>
      </form>
      <p id="send-result" class="result" aria-live="polite"></p>
      <p class="hint" id="publisher">PHP publishes with <?= h(demo_publisher_name()) ?> on push-core's Unix socket.</p>
    </section>

    <section class="card people">
      <h2>Other users</h2>
      <ul id="online">
        <?php foreach ($others as $user): ?>
          <li data-user="<?= h($user) ?>" data-online="unknown">
            <span class="avatar avatar-<?= h($user) ?>"><?= h(strtoupper($user[0])) ?></span>
            <span class="name"><?= h($user) ?></span>
            <span class="presence"><span class="dot"></span><span class="label">…</span></span>
          </li>
        <?php endforeach ?>
      </ul>
      <p class="hint">From <code>isOnline()</code>, asked every few seconds.</p>
    </section>

    <section class="card feed">
      <h2>Live messages <span class="room-list">rooms: <?= h(implode(', ', DEMO_USERS[$me]['rooms'])) ?></span></h2>
      <p id="recovery" class="recovery" aria-live="polite" hidden></p>
      <ol id="feed" reversed></ol>
      <p id="feed-empty" class="empty">Nothing yet. Messages pushed to you appear here as they arrive.</p>
    </section>
  </main>

  <script src="/socket.io.min.js"></script>
  <script type="module" src="/app.js"></script>
</body>
</html>
