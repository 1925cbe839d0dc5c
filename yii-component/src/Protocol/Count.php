<?php

declare(strict_types=1);

namespace PushCore\Yii\Protocol;

/**
 * A count the daemon answered with (connections a publish reached, or a
 * user's connections) and whether it is partial: push-core runs as a
 * cluster and a node's figures may be out of date or missing, so $total
 * may leave it out.
 * push-client's Count, in PHP.
 */
final class Count
{
    public function __construct(
        public readonly int $total,
        public readonly bool $partial = false,
    ) {
    }
}
