<?php

/**
 * STAND-INS FOR YII 2 — NOT YII.
 *
 * Yii cannot be installed from the package registries on the test machines,
 * so the tests run the component against these minimal stand-ins for the
 * Yii 2.0 classes it touches. Each one implements only the public API the
 * component and the tests call, with the same names, signatures and
 * behaviour as Yii 2.0.49 (BaseYii, base\BaseObject, base\Component,
 * base\Application, db\Connection, db\Transaction, web\Response, web\User,
 * log\Logger).
 *
 * Load only one of yii1.php and yii2.php in a process: both define the
 * global class Yii, as the real frameworks do.
 */

declare(strict_types=1);

namespace yii\base {
    class Exception extends \Exception
    {
    }

    class InvalidConfigException extends Exception
    {
    }

    class UnknownPropertyException extends Exception
    {
    }

    class Event
    {
        public $name;
        public $sender;
        public $handled = false;
        public $data;
    }

    /** Stand-in for BaseObject: configuration through the constructor, then init(). */
    class BaseObject
    {
        public function __construct($config = [])
        {
            if (!empty($config)) {
                \Yii::configure($this, $config);
            }
            $this->init();
        }

        public function init()
        {
        }

        public function __get($name)
        {
            $getter = 'get' . $name;
            if (method_exists($this, $getter)) {
                return $this->$getter();
            }
            throw new UnknownPropertyException('Getting unknown property: ' . static::class . '::' . $name);
        }

        public function __set($name, $value)
        {
            $setter = 'set' . $name;
            if (method_exists($this, $setter)) {
                $this->$setter($value);
                return;
            }
            throw new UnknownPropertyException('Setting unknown property: ' . static::class . '::' . $name);
        }

        public static function className()
        {
            return static::class;
        }
    }

    /** Stand-in for Component: on(), off(), trigger(). */
    class Component extends BaseObject
    {
        /** @var array<string, list<array{0: callable, 1: mixed}>> */
        private $_events = [];

        public function on($name, $handler, $data = null, $append = true)
        {
            $this->_events[$name][] = [$handler, $data];
        }

        public function off($name, $handler = null)
        {
            unset($this->_events[$name]);
            return true;
        }

        public function trigger($name, ?Event $event = null)
        {
            $event ??= new Event();
            $event->sender ??= $this;
            $event->name = $name;
            foreach ($this->_events[$name] ?? [] as [$handler, $data]) {
                $event->data = $data;
                \call_user_func($handler, $event);
                if ($event->handled) {
                    return;
                }
            }
        }
    }

    /** Stand-in for Action. */
    class Action extends Component
    {
        public $id;
        public $controller;

        public function __construct($id, $controller, $config = [])
        {
            $this->id = $id;
            $this->controller = $controller;
            parent::__construct($config);
        }
    }

    /** Stand-in for Application: components by id, EVENT_AFTER_REQUEST. */
    abstract class Application extends Component
    {
        public const EVENT_BEFORE_REQUEST = 'beforeRequest';
        public const EVENT_AFTER_REQUEST = 'afterRequest';

        /** @var array<string, mixed> */
        private $_definitions = [];
        /** @var array<string, object> */
        private $_components = [];

        public function __construct($config = [])
        {
            \Yii::$app = $this;
            foreach ($this->coreComponents() as $id => $definition) {
                $this->_definitions[$id] = $definition;
            }
            foreach ($config['components'] ?? [] as $id => $definition) {
                $this->set($id, $definition);
            }
            unset($config['components']);
            parent::__construct($config);
        }

        public function coreComponents()
        {
            return [];
        }

        public function __get($name)
        {
            return $this->get($name);
        }

        public function has($id, $checkInstance = false)
        {
            return $checkInstance ? isset($this->_components[$id]) : isset($this->_definitions[$id]) || isset($this->_components[$id]);
        }

        public function get($id, $throwException = true)
        {
            if (isset($this->_components[$id])) {
                return $this->_components[$id];
            }
            if (isset($this->_definitions[$id])) {
                return $this->_components[$id] = \Yii::createObject($this->_definitions[$id]);
            }
            if ($throwException) {
                throw new InvalidConfigException("Unknown component ID: $id");
            }
            return null;
        }

        public function set($id, $definition)
        {
            unset($this->_components[$id]);
            if (\is_object($definition)) {
                $this->_components[$id] = $definition;
            } else {
                $this->_definitions[$id] = $definition;
            }
        }

        public function getResponse()
        {
            return $this->get('response');
        }

        public function getRequest()
        {
            return $this->get('request');
        }

        public function getUser()
        {
            return $this->get('user');
        }

        public function getDb()
        {
            return $this->get('db');
        }
    }
}

namespace yii\web {
    use yii\base\Component;

    class HeaderCollection
    {
        /** @var array<string, list<string>> */
        private $_headers = [];

        public function get($name, $default = null, $first = true)
        {
            $values = $this->_headers[strtolower($name)] ?? null;
            if ($values === null) {
                return $default;
            }
            return $first ? $values[0] : $values;
        }

        public function set($name, $value = '')
        {
            $this->_headers[strtolower($name)] = (array) $value;
            return $this;
        }

        /** @return array<string, list<string>> */
        public function toArray()
        {
            return $this->_headers;
        }
    }

    /** Stand-in for web\Request: the headers of the current request. */
    class Request extends Component
    {
        private $_headers;

        public function getHeaders()
        {
            if ($this->_headers === null) {
                $this->_headers = new HeaderCollection();
                foreach ($_SERVER as $key => $value) {
                    if (strncmp($key, 'HTTP_', 5) === 0) {
                        $this->_headers->set(str_replace('_', '-', substr($key, 5)), $value);
                    }
                }
            }
            return $this->_headers;
        }
    }

    /** Stand-in for web\Response: status, format, headers, send() and EVENT_AFTER_SEND. */
    class Response extends Component
    {
        public const EVENT_BEFORE_SEND = 'beforeSend';
        public const EVENT_AFTER_SEND = 'afterSend';
        public const FORMAT_HTML = 'html';
        public const FORMAT_JSON = 'json';

        public $format = self::FORMAT_HTML;
        public $data;
        public $content;
        public $statusCode = 200;
        public $isSent = false;
        private $_headers;

        public function getHeaders()
        {
            return $this->_headers ??= new HeaderCollection();
        }

        public function send()
        {
            if ($this->isSent) {
                return;
            }
            $this->trigger(self::EVENT_BEFORE_SEND);
            if ($this->format === self::FORMAT_JSON) {
                $this->getHeaders()->set('Content-Type', 'application/json; charset=UTF-8');
                $this->content = json_encode($this->data);
            }
            if (!headers_sent()) {
                http_response_code($this->statusCode);
                foreach ($this->getHeaders()->toArray() as $name => $values) {
                    foreach ($values as $value) {
                        header("$name: $value", false);
                    }
                }
            }
            echo $this->content;
            $this->trigger(self::EVENT_AFTER_SEND);
            $this->isSent = true;
        }
    }

    /** Stand-in for web\User over a real PHP session ($_SESSION['__id'], as the real one). */
    class User extends Component
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

        public function login($id)
        {
            session_regenerate_id(true);
            $_SESSION['__id'] = $id;
            return true;
        }
    }

    class Application extends \yii\base\Application
    {
        public function coreComponents()
        {
            return [
                'request' => ['class' => Request::class],
                'response' => ['class' => Response::class],
                'user' => ['class' => User::class],
            ];
        }

        /** The tail of the real run(): after-request, then the response goes out. */
        public function finishRequest()
        {
            $this->trigger(self::EVENT_AFTER_REQUEST);
            $this->getResponse()->send();
        }
    }
}

namespace yii\console {
    class Response extends \yii\base\Component
    {
    }

    class Application extends \yii\base\Application
    {
        public function coreComponents()
        {
            return ['response' => ['class' => Response::class]];
        }

        public function finishRequest()
        {
            $this->trigger(self::EVENT_AFTER_REQUEST);
        }
    }
}

namespace yii\db {
    use yii\base\Component;

    /**
     * Stand-in for db\Connection: transactions without a database. The
     * commit and rollback events fire when the outermost transaction ends,
     * as in Yii 2. $log records what happened.
     */
    class Connection extends Component
    {
        public const EVENT_BEGIN_TRANSACTION = 'beginTransaction';
        public const EVENT_COMMIT_TRANSACTION = 'commitTransaction';
        public const EVENT_ROLLBACK_TRANSACTION = 'rollbackTransaction';

        /** @var list<string> */
        public $log = [];
        private $_transaction;

        public function beginTransaction($isolationLevel = null)
        {
            $this->_transaction ??= new Transaction(['db' => $this]);
            $this->_transaction->begin($isolationLevel);
            return $this->_transaction;
        }

        public function getTransaction()
        {
            return $this->_transaction && $this->_transaction->getIsActive() ? $this->_transaction : null;
        }

        public function transaction(callable $callback, $isolationLevel = null)
        {
            $transaction = $this->beginTransaction($isolationLevel);
            $level = $transaction->level;
            try {
                $result = $callback($this);
                if ($transaction->isActive && $transaction->level === $level) {
                    $transaction->commit();
                }
            } catch (\Throwable $e) {
                if ($transaction->isActive && $transaction->level === $level) {
                    $transaction->rollBack();
                }
                throw $e;
            }
            return $result;
        }
    }

    class Transaction extends \yii\base\BaseObject
    {
        /** @var Connection */
        public $db;
        public $level = 0;

        public function getIsActive()
        {
            return $this->level > 0;
        }

        public function begin($isolationLevel = null)
        {
            if ($this->level === 0) {
                $this->db->log[] = 'begin';
                $this->db->trigger(Connection::EVENT_BEGIN_TRANSACTION);
            } else {
                $this->db->log[] = 'savepoint ' . $this->level;
            }
            $this->level++;
        }

        public function commit()
        {
            $this->level--;
            if ($this->level === 0) {
                $this->db->log[] = 'commit';
                $this->db->trigger(Connection::EVENT_COMMIT_TRANSACTION);
                return;
            }
            $this->db->log[] = 'release savepoint ' . $this->level;
        }

        public function rollBack()
        {
            $this->level--;
            if ($this->level === 0) {
                $this->db->log[] = 'rollback';
                $this->db->trigger(Connection::EVENT_ROLLBACK_TRANSACTION);
                return;
            }
            $this->db->log[] = 'rollback savepoint ' . $this->level;
        }
    }
}

namespace yii\log {
    /** Stand-in for log\Logger: keeps every message in memory. */
    class Logger extends \yii\base\Component
    {
        public const LEVEL_ERROR = 0x01;
        public const LEVEL_WARNING = 0x02;
        public const LEVEL_INFO = 0x04;
        public const LEVEL_TRACE = 0x08;

        /** @var list<array{0: string, 1: int, 2: string, 3: float}> */
        public $messages = [];

        public function log($message, $level, $category = 'application')
        {
            $this->messages[] = [$message, $level, $category, microtime(true)];
        }
    }
}

namespace yii {
    /** Stand-in for BaseYii: createObject, configure, the log shortcuts. */
    class BaseYii
    {
        /** @var \yii\base\Application|null */
        public static $app;
        private static $_logger;

        public static function createObject($type, array $params = [])
        {
            if (\is_string($type)) {
                return new $type(...$params);
            }
            $class = $type['class'];
            unset($type['class']);
            return new $class($type);
        }

        public static function configure($object, $properties)
        {
            foreach ($properties as $name => $value) {
                $object->$name = $value;
            }
            return $object;
        }

        public static function getLogger()
        {
            return self::$_logger ??= new log\Logger();
        }

        public static function setLogger($logger)
        {
            self::$_logger = $logger;
        }

        public static function error($message, $category = 'application')
        {
            static::getLogger()->log($message, log\Logger::LEVEL_ERROR, $category);
        }

        public static function warning($message, $category = 'application')
        {
            static::getLogger()->log($message, log\Logger::LEVEL_WARNING, $category);
        }

        public static function info($message, $category = 'application')
        {
            static::getLogger()->log($message, log\Logger::LEVEL_INFO, $category);
        }
    }
}

namespace {
    class Yii extends \yii\BaseYii
    {
    }
}
