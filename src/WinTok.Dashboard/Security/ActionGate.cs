using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using WinTok.Dashboard.Pages;

namespace WinTok.Dashboard.Security;

/// <summary>
/// Guards every action endpoint (cancel, retry): 403 when no token is configured (the dashboard is read-only), 401
/// without the right credential. A script sends <c>Authorization: Bearer TOKEN</c>; a browser carries the session cookie
/// of <c>/login</c>, and then its form must also pass antiforgery validation, since a cookie rides along with any
/// cross-site request.
/// </summary>
internal sealed class ActionGate(ActionToken token, IAntiforgery antiforgery, ILogger<ActionGate> logger) : IEndpointFilter
{
    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        var api = http.Request.Path.StartsWithSegments("/api", StringComparison.Ordinal);
        if (!token.IsConfigured)
        {
            Log.RefusedAction(logger, http.Request.Path, "no action token is configured");
            return Responses.Refuse(http, StatusCodes.Status403Forbidden, "Actions are disabled",
                "This dashboard is read-only: start it with Dashboard__ActionToken set to allow cancel and retry.", api);
        }
        if (ActionToken.Bearer(http.Request.Headers.Authorization) is { } bearer)
        {
            if (token.Matches(bearer)) return await next(context);
            Log.RefusedAction(logger, http.Request.Path, "wrong bearer token");
            return Responses.Refuse(http, StatusCodes.Status401Unauthorized, "Wrong token", "The bearer token is not the action token.", api);
        }
        if (token.IsSession(http.Request.Cookies[ActionToken.CookieName]))
        {
            if (!await antiforgery.IsRequestValidAsync(http))
            {
                Log.RefusedAction(logger, http.Request.Path, "antiforgery validation failed");
                return Responses.Refuse(http, StatusCodes.Status400BadRequest, "Form expired",
                    "The form did not come from this dashboard (or the dashboard restarted): reload the page and try again.", api);
            }
            return await next(context);
        }
        Log.RefusedAction(logger, http.Request.Path, "no credentials");
        http.Response.Headers.WWWAuthenticate = "Bearer";
        return Responses.Refuse(http, StatusCodes.Status401Unauthorized, "Sign in first",
            "Actions need the action token: sign in, or send it as Authorization: Bearer.", api);
    }
}
