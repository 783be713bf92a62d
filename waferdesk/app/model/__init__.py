"""The desktop's document layer without Qt: opened wafers, their editable labels and
predictions, picture composition, exports. Tested without a display; the widgets only show it.
"""
