using System.ComponentModel.DataAnnotations;

namespace WinTok.Messaging;

/// <summary>The job queue, bound from <c>JobQueue</c>.</summary>
public sealed class JobQueueOptions
{
    public const string SectionName = "JobQueue";

    /// <summary><c>RabbitMq</c> for many workers, <c>InProcess</c> for one process (an in-memory channel; nothing survives the process).</summary>
    /// <value><c>RabbitMq</c>.</value>
    public JobQueueTransport Transport { get; set; } = JobQueueTransport.RabbitMq;

    /// <summary>An AMQP URI (<c>amqp://user:password@host:5672/vhost</c>); required for RabbitMQ.</summary>
    /// <value>From the <c>WINTOK_RABBITMQ</c> environment variable when not set.</value>
    public string? ConnectionString { get; set; }

    /// <summary>Prefix of every queue and exchange name: queue <c>{prefix}.tokenize-partition</c>, its dead letters in <c>….dead</c>.</summary>
    /// <value><c>wintok</c>.</value>
    [Required]
    [RegularExpression("^[a-z0-9][a-z0-9.-]*$")]
    public string QueuePrefix { get; set; } = "wintok";

    /// <summary>Messages one consumer holds unacked and handles at once. One GPU worker: 1 (a partition is minutes of work).</summary>
    /// <value>1.</value>
    [Range(1, 1000)]
    public ushort PrefetchCount { get; set; } = 1;

    /// <summary>
    /// Returns (failures, requeues, lost consumers) after which the broker dead-letters a message (quorum
    /// <c>x-delivery-limit</c>): a message is delivered at most <c>DeliveryLimit + 1</c> times. Changing it on an
    /// existing queue needs the queue deleted first (or a policy).
    /// </summary>
    /// <value>5.</value>
    [Range(1, 1000)]
    public int DeliveryLimit { get; set; } = 5;

    /// <summary>
    /// Longest a handler may run on one message before it is cancelled and the message returned. Must stay below the
    /// broker's <c>consumer_timeout</c> (deploy/services.sh: 30 min), or the broker closes the channel first.
    /// </summary>
    /// <value>25 min.</value>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00")]
    public TimeSpan HandlerTimeout { get; set; } = TimeSpan.FromMinutes(25);

    /// <summary>
    /// <see cref="HandlerTimeout"/> per message type (its class name, e.g. <c>TrainRun</c>), for the kinds whose one
    /// message is hours of work: a training run's handler holds its message for the whole run. The broker's consumer
    /// timeout must allow as much on that queue (deploy/services.sh; RabbitMQ 3.12+: a <c>consumer-timeout</c> policy).
    /// </summary>
    /// <value>Empty here; a handler registered with a longer timeout adds its own default (a training run: 7 days).</value>
    public Dictionary<string, TimeSpan> HandlerTimeouts { get; set; } = [];

    /// <summary>The handler timeout of <typeparamref name="TMessage"/>'s queue.</summary>
    public TimeSpan HandlerTimeoutOf<TMessage>() => HandlerTimeouts.TryGetValue(typeof(TMessage).Name, out var timeout) ? timeout : HandlerTimeout;

    /// <summary>On shutdown, how long in-flight handlers may finish before they are cancelled and their messages returned.</summary>
    /// <value>30 s; keep <c>HostOptions.ShutdownTimeout</c> above it.</value>
    [Range(typeof(TimeSpan), "00:00:00", "01:00:00")]
    public TimeSpan DrainTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Delay before a <see cref="HandlerOutcomeKind.RetryLater"/> message is returned to the queue, so it is not redelivered at once.</summary>
    /// <value>1 s.</value>
    [Range(typeof(TimeSpan), "00:00:00", "00:10:00")]
    public TimeSpan RetryLaterDelay { get; set; } = TimeSpan.FromSeconds(1);
}

public enum JobQueueTransport
{
    RabbitMq,
    InProcess,
}
