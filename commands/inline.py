"""
command: /inline_query
description: Answers inline queries (@bot text); the query text is request["query"]
"""
query = request["query"]
Api.answerInlineQuery(inline_query_id=request["id"], cache_time=0, results=[{
    "type": "article", "id": "echo", "title": f"Echo: {query}",
    "input_message_content": {"message_text": query or "(empty)"},
}])
