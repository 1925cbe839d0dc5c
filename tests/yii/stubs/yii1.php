<?php

/**
 * STAND-INS FOR YII 1.1 — NOT YII.
 *
 * Yii cannot be installed from the package registries on the test machines,
 * so the tests run the component against these minimal stand-ins for the
 * Yii 1.1 classes it touches. Each one implements only the public API the
 * component and the tests call, with the same names, signatures and
 * behaviour as Yii 1.1.29 (framework/YiiBase.php, base/CComponent.php,
 * base/CApplication.php, logging/CLogger.php, db/CDbConnection.php,
 * db/CDbTransaction.php, web/auth/CWebUser.php, web/actions/CAction.php).
 *
 * The component must never depend on anything here that real Yii lacks:
 * anything it uses must be public Yii 1.1 API.
 */

declare(strict_types=1);

class CException extends Exception
{
}

class CEvent
{
    public $sender;
    public $handled = false;
    public $params;

    public function __construct($sender = null, $params = null)
    {
        $this->sender = $sender;
        $this->params = $params;
    }
}

/** Stand-in for CComponent: getter/setter properties and on* events. */
class CComponent
{
    /** @var array<string, list<callable>> */
    private $_e = array();

    public function __get($name)
    {
        $getter = 'get' . $name;
        if (method_exists($this, $getter)) {
            return $this->$getter();
        }
        throw new CException('Property "' . get_class($this) . '.' . $name . '" is not defined.');
    }

    public function __set($name, $value)
    {
        $setter = 'set' . $name;
        if (method_exists($this, $setter)) {
            return $this->$setter($value);
        }
        throw new CException('Property "' . get_class($this) . '.' . $name . '" is not defined.');
    }

    public function hasEvent($name)
    {
        return !strncasecmp($name, 'on', 2) && method_exists($this, $name);
    }

    public function attachEventHandler($name, $handler)
    {
        if (!$this->hasEvent($name)) {
            throw new CException('Event "' . get_class($this) . '.' . $name . '" is not defined.');
        }
        $this->_e[strtolower($name)][] = $handler;
    }

    public function raiseEvent($name, $event)
    {
        foreach ($this->_e[strtolower($name)] ?? array() as $handler) {
            call_user_func($handler, $event);
            if ($event instanceof CEvent && $event->handled) {
                return;
            }
        }
    }
}

/** Stand-in for CApplicationComponent. */
abstract class CApplicationComponent extends CComponent
{
    public $behaviors = array();
    private $_initialized = false;

    public function init()
    {
        $this->_initialized = true;
    }

    public function getIsInitialized()
    {
        return $this->_initialized;
    }
}

/** Stand-in for CLogger: keeps every message in memory. */
class CLogger extends CComponent
{
    const LEVEL_TRACE = 'trace';
    const LEVEL_WARNING = 'warning';
    const LEVEL_ERROR = 'error';
    const LEVEL_INFO = 'info';
    const LEVEL_PROFILE = 'profile';

    /** @var list<array{0: string, 1: string, 2: string, 3: float}> */
    private $_logs = array();

    public function log($message, $level = 'info', $category = 'application')
    {
        $this->_logs[] = array($message, $level, $category, microtime(true));
    }

    public function getLogs($levels = '', $categories = array(), $except = array())
    {
        return array_values(array_filter($this->_logs, function ($log) use ($levels, $categories) {
            return ($levels === '' || $log[1] === $levels)
                && ($categories === array() || in_array($log[2], (array) $categories, true));
        }));
    }

    public function flush($dumpLogs = false)
    {
        $this->_logs = array();
    }
}

/** Stand-in for YiiBase: the application, path aliases, createComponent and log. */
class YiiBase
{
    private static $_app;
    private static $_logger;
    /** @var array<string, string> */
    private static $_aliases = array();

    public static function app()
    {
        return self::$_app;
    }

    public static function setApplication($app)
    {
        self::$_app = $app;
    }

    public static function setPathOfAlias($alias, $path)
    {
        self::$_aliases[$alias] = rtrim($path, '\\/');
    }

    public static function getPathOfAlias($alias)
    {
        foreach (self::$_aliases as $root => $path) {
            if ($alias === $root || strncmp($alias, $root . '.', strlen($root) + 1) === 0) {
                return $path . str_replace('.', DIRECTORY_SEPARATOR, substr($alias, strlen($root)));
            }
        }
        return false;
    }

    /** Like Yii::import() of a class alias: includes the file, returns the class name. */
    public static function import($alias)
    {
        if (strpos($alias, '.') === false) {
            return $alias;
        }
        $class = substr($alias, strrpos($alias, '.') + 1);
        if (!class_exists($class, false)) {
            $path = self::getPathOfAlias($alias);
            if ($path === false || !is_file($path . '.php')) {
                throw new CException('Alias "' . $alias . '" is invalid.');
            }
            require_once $path . '.php';
        }
        return $class;
    }

    public static function createComponent($config)
    {
        if (is_string($config)) {
            $config = array('class' => $config);
        }
        $class = self::import($config['class']);
        unset($config['class']);
        $args = func_get_args();
        array_shift($args);
        $object = new $class(...$args);
        foreach ($config as $key => $value) {
            $object->$key = $value;
        }
        return $object;
    }

    public static function getLogger()
    {
        return self::$_logger ??= new CLogger();
    }

    public static function setLogger($logger)
    {
        self::$_logger = $logger;
    }

    public static function log($msg, $level = CLogger::LEVEL_INFO, $category = 'application')
    {
        self::getLogger()->log($msg, $level, $category);
    }
}

class Yii extends YiiBase
{
}

/** Stand-in for CApplication: components, onEndRequest and end(). */
class CApplication extends CComponent
{
    /** @var array<string, array<string, mixed>> */
    private $_componentConfig = array();
    /** @var array<string, object> */
    private $_components = array();
    private $_ended = false;

    public function __construct($config = array())
    {
        Yii::setApplication($this);
        foreach ($config['components'] ?? array() as $id => $component) {
            $this->setComponent($id, $component);
        }
    }

    public function __get($name)
    {
        if ($this->hasComponent($name)) {
            return $this->getComponent($name);
        }
        return parent::__get($name);
    }

    public function hasComponent($id)
    {
        return isset($this->_components[$id]) || isset($this->_componentConfig[$id]);
    }

    public function getComponent($id, $createIfNull = true)
    {
        if (isset($this->_components[$id])) {
            return $this->_components[$id];
        }
        if (isset($this->_componentConfig[$id]) && $createIfNull) {
            $component = Yii::createComponent($this->_componentConfig[$id]);
            $component->init();
            return $this->_components[$id] = $component;
        }
        return null;
    }

    public function setComponent($id, $component)
    {
        if (is_object($component)) {
            $this->_components[$id] = $component;
        } else {
            unset($this->_components[$id]);
            $this->_componentConfig[$id] = $component;
        }
    }

    public function getUser()
    {
        return $this->getComponent('user');
    }

    public function getDb()
    {
        return $this->getComponent('db');
    }

    public function onEndRequest($event)
    {
        if (!$this->_ended) {
            $this->_ended = true;
            $this->raiseEvent('onEndRequest', $event);
        }
    }

    public function end($status = 0, $exit = true)
    {
        $this->onEndRequest(new CEvent($this));
        if ($exit) {
            exit($status);
        }
    }
}

class CWebApplication extends CApplication
{
}

/** Stand-in for CAction. */
abstract class CAction extends CComponent
{
    private $_id;
    private $_controller;

    public function __construct($controller, $id)
    {
        $this->_controller = $controller;
        $this->_id = $id;
    }

    public function getController()
    {
        return $this->_controller;
    }

    public function getId()
    {
        return $this->_id;
    }
}

/**
 * Stand-in for CWebUser over a real PHP session: the id is kept in
 * $_SESSION['__id'], as CWebUser keeps it under its state key prefix.
 */
class CWebUser extends CApplicationComponent
{
    public function init()
    {
        parent::init();
        if (session_status() !== PHP_SESSION_ACTIVE && !headers_sent()) {
            session_start();
        }
    }

    public function getIsGuest()
    {
        return $this->getId() === null;
    }

    public function getId()
    {
        return $_SESSION['__id'] ?? null;
    }

    public function getState($key, $defaultValue = null)
    {
        return $_SESSION[$key] ?? $defaultValue;
    }

    public function login($id, $states = array())
    {
        session_regenerate_id(true);
        $_SESSION['__id'] = $id;
        foreach ($states as $key => $value) {
            $_SESSION[$key] = $value;
        }
    }
}

/**
 * Stand-in for CDbConnection: transactions without a database. Enough to
 * show that sends wait for the commit; $log records what happened.
 */
class CDbConnection extends CApplicationComponent
{
    /** @var list<string> */
    public $log = array();
    private $_transaction;

    public function beginTransaction()
    {
        if ($this->getCurrentTransaction() !== null) {
            throw new CException('There is already an active transaction');
        }
        $this->log[] = 'begin';
        return $this->_transaction = new CDbTransaction($this);
    }

    public function getCurrentTransaction()
    {
        if ($this->_transaction !== null && $this->_transaction->getActive()) {
            return $this->_transaction;
        }
        return null;
    }
}

/** Stand-in for CDbTransaction. */
class CDbTransaction extends CComponent
{
    private $_connection;
    private $_active = true;

    public function __construct(CDbConnection $connection)
    {
        $this->_connection = $connection;
    }

    public function commit()
    {
        if (!$this->_active) {
            throw new CException('CDbTransaction is inactive and cannot perform commit or roll back operations.');
        }
        $this->_connection->log[] = 'commit';
        $this->_active = false;
    }

    public function rollback()
    {
        if (!$this->_active) {
            throw new CException('CDbTransaction is inactive and cannot perform commit or roll back operations.');
        }
        $this->_connection->log[] = 'rollback';
        $this->_active = false;
    }

    public function getConnection()
    {
        return $this->_connection;
    }

    public function getActive()
    {
        return $this->_active;
    }
}
