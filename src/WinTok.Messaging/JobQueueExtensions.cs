using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using WinTok.Contracts;
using WinTok.ServiceDefaults;


namespace WinTok.Messaging;

public static class JobQueueExtensions
{
    /// <summary>
    /// The job queue from <c>JobQueue</c> (<c>WINTOK_RABBITMQ</c> when no connection string is configured):
    /// <see cref="IMessagePublisher{TMessage}"/> for every message type, over RabbitMQ or in process by
    /// <c>JobQueue:Transport</c>. Add consumers with <see cref="JobQueueBuilder.Handle{TMessage, THandler}"/>.
    /// </summary>
    public static JobQueueBuilder AddJobQueue(this IHostApplicationBuilder builder)
    {
        builder.AddRetryPipeline(RabbitMqConnection.PipelineKey, RabbitMqConnection.IsTransient);
        var configuration = builder.Configuration;
        builder.Services.AddOptions<JobQueueOptions>()
            .BindConfiguration(JobQueueOptions.SectionName)
            .PostConfigure(options => options.ConnectionString ??= configuration["WINTOK_RABBITMQ"])
            .Validate(options => options.Transport == JobQueueTransport.InProcess || options.ConnectionString is not null,
                "JobQueue:ConnectionString (or WINTOK_RABBITMQ) is required for the RabbitMq transport")
            .Validate(options => options.HandlerTimeout > options.DrainTimeout || options.DrainTimeout == TimeSpan.Zero,
                "JobQueue:HandlerTimeout must exceed JobQueue:DrainTimeout")
            .ValidateOnStart();
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<JobQueueOptions>, JobQueueOptionsValidator>());

        var transport = configuration.GetSection(JobQueueOptions.SectionName).GetValue<JobQueueTransport?>(nameof(JobQueueOptions.Transport))
            ?? JobQueueTransport.RabbitMq;
        if (transport == JobQueueTransport.RabbitMq)
        {
            builder.Services.TryAddSingleton<RabbitMqConnection>();
            builder.Services.TryAddSingleton(typeof(IMessagePublisher<>), typeof(RabbitMqPublisher<>));
        }
        else
        {
            builder.Services.TryAddSingleton(typeof(InProcessJobQueue<>));
            builder.Services.TryAddSingleton(typeof(IMessagePublisher<>), typeof(InProcessPublisher<>));
        }
        return new JobQueueBuilder(builder.Services, transport);
    }
}

/// <summary>Registers handlers on the job queue: one consumer per message type.</summary>
public sealed class JobQueueBuilder(IServiceCollection services, JobQueueTransport transport)
{
    public JobQueueTransport Transport { get; } = transport;

    /// <summary>
    /// Consumes <typeparamref name="TMessage"/> with a scoped <typeparamref name="THandler"/>. A
    /// <paramref name="handlerTimeout"/> replaces <c>JobQueue:HandlerTimeout</c> for this type unless
    /// <c>JobQueue:HandlerTimeouts:{TypeName}</c> is configured.
    /// </summary>
    public JobQueueBuilder Handle<TMessage, THandler>(TimeSpan? handlerTimeout = null)
        where TMessage : class, IJobMessage
        where THandler : class, IMessageHandler<TMessage>
    {
        if (handlerTimeout is { } timeout)
            services.PostConfigure<JobQueueOptions>(options => options.HandlerTimeouts.TryAdd(typeof(TMessage).Name, timeout));
        services.TryAddScoped<IMessageHandler<TMessage>, THandler>();
        if (Transport == JobQueueTransport.RabbitMq)
        {
            services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, RabbitMqConsumer<TMessage>>());
        }
        else
        {
            services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, InProcessConsumer<TMessage>>());
            services.TryAddEnumerable(ServiceDescriptor.Singleton<IDeadLetters, InProcessJobQueue<TMessage>>(
                provider => provider.GetRequiredService<InProcessJobQueue<TMessage>>()));
        }
        return this;
    }
}

[OptionsValidator]
internal sealed partial class JobQueueOptionsValidator : IValidateOptions<JobQueueOptions>;
